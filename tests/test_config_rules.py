"""gluekit.config.rules / training_rules: a list of small rules, every problem collected, defaults from transformers."""
import copy
import dataclasses

import pytest
from transformers import Seq2SeqTrainingArguments

from gluekit import ConfigError
from gluekit.config import RULES, TRAINING_ARGS_RULES, files, trainer_default, validate
from gluekit.config.checks import Context, Problems

BASE = {
    "data_config": {"train_file": "train.jsonl", "val_file": "dev.jsonl"},
    "max_input_length": 64, "max_output_length": 16,
    "training_args": {"max_steps": 30, "eval_strategy": "steps", "eval_steps": 10, "save_steps": 10, "report_to": "none",
                      "predict_with_generate": True},
    "peft_config": {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": "all-linear"},
}


def with_args(**ta):
    raw = copy.deepcopy(BASE)
    raw["training_args"].update(ta)
    for k in [k for k, v in ta.items() if v is ...]:
        del raw["training_args"][k]  # ``key=...`` leaves the key out: transformers' default applies
    return raw


def problems(raw, **kw):
    with pytest.raises(ConfigError) as e:
        validate(raw, **kw)
    return e.value.problems


def test_rules_are_small_named_functions_in_order():
    assert [r.__name__ for r in RULES] == ["top_level_keys", "data_config", "combine", "lengths", "training_args",
                                           "peft_config", "packing", "quantization", "freeze_v", "swanlab", "early_stopping",
                                           "eval_samples"]
    assert [r.__name__ for r in TRAINING_ARGS_RULES] == [
        "training_arg_types", "training_arg_ranges", "evaluation_needs_data", "best_model", "best_metric", "resume_in_config",
        "report_to", "precision", "generation", "deepspeed", "transformers_accepts"]


def test_one_rule_alone_on_a_context():
    from gluekit.config.training_rules import precision

    ctx = Context({"training_args": {"fp16": True}}, Problems("c.yaml", {"training_args.fp16": 9}))
    precision(ctx)
    assert ctx.problems.items == ["c.yaml:9: `training_args.fp16`: GLM-4 gives NaN losses in float16, got fp16: true. "
                                  "Use bf16: true on a GPU that supports it, or neither."]
    assert ctx.problems.any_under("training_args") and not ctx.problems.any_under("training")


def test_trainer_defaults_are_transformers_own():
    built = Seq2SeqTrainingArguments(output_dir="x")
    for key in ("per_device_train_batch_size", "save_steps", "logging_steps", "max_steps", "seed", "num_train_epochs"):
        assert trainer_default(key) == getattr(built, key), key
    assert (trainer_default("save_strategy"), trainer_default("eval_strategy")) == (built.save_strategy.value, built.eval_strategy.value)
    assert trainer_default("eval_steps") is None  # transformers then evaluates every logging_steps


def test_best_model_rule_reads_the_trainers_save_and_eval_steps():
    # save_steps left out: transformers' 500, not a multiple of eval_steps 300
    best = {"load_best_model_at_end": True, "metric_for_best_model": "rouge-l", "predict_with_generate": True}
    out = problems(with_args(save_steps=..., eval_steps=300, max_steps=900, **best))
    assert trainer_default("save_steps") == 500
    assert out == ["`training_args.save_steps`: must be a multiple of eval_steps (300) when load_best_model_at_end is true, "
                   "got 500. Use save_steps: 600."]
    # eval_steps left out: the Trainer evaluates every logging_steps (here transformers' default 500)
    out = problems(with_args(eval_steps=..., save_steps=750, max_steps=900, **best))
    assert out == ["`training_args.save_steps`: must be a multiple of eval_steps (500) when load_best_model_at_end is true, "
                   "got 750. Use save_steps: 1000."]
    # eval_strategy left out: transformers' "no" differs from save_strategy's default "steps"
    out = problems(with_args(eval_strategy=..., **best))
    assert out == ["`training_args.save_strategy`: must equal eval_strategy ('no') when load_best_model_at_end is true, got 'steps'."]


def test_packing_note_uses_the_trainers_batch_size():
    note = "packing is true but per_device_train_batch_size is 1: a one-sample batch has no padding, so packing changes nothing."
    assert note in validate({**with_args(per_device_train_batch_size=1), "packing": True}).notes
    assert trainer_default("per_device_train_batch_size") == 8
    assert validate({**BASE, "packing": True}).notes == []  # the default 8 has padding to remove


def test_validation_changes_nothing_it_is_given():
    raw = with_args(deepspeed=str(files.SHIPPED_DIR / "ds_zero_3.json"), generation_config={"max_new_tokens": 8})
    before = copy.deepcopy(raw)
    cfg = validate(raw)
    assert raw == before
    assert cfg.training_args == before["training_args"] and cfg.training_args is not raw["training_args"]


def test_machine_check_is_separate(monkeypatch):
    raw = with_args(deepspeed=str(files.SHIPPED_DIR / "ds_zero_3.json"))
    monkeypatch.setattr(files, "deepspeed_installed", lambda: False)
    cfg = validate(raw)  # planning: the missing package is a note
    assert cfg.notes == ["training_args.deepspeed is set but the deepspeed package is not installed here: this machine can "
                         "plan the run, not train it (`gluekit check` reports it as a problem)."]
    assert problems(raw, check_machine=True) == [
        "`training_args.deepspeed`: is set but the deepspeed package is not installed. `pip install deepspeed` on a CUDA "
        "machine, or remove the key (`-o training_args.deepspeed=null` for one run)."]
    monkeypatch.setattr(files, "deepspeed_installed", lambda: True)
    assert validate(raw, check_machine=True).notes == []


def test_every_problem_of_every_rule_in_one_error():
    raw = with_args(fp16=True, learning_rate=-1.0, resume_from_checkpoint="x", report_to="wandbb")
    raw["combine"] = "yes"
    raw["peft_config"]["r"] = 0
    raw["packing"] = 1
    out = problems(raw)
    assert [p.split("`")[1] for p in out] == [
        "combine", "training_args.learning_rate", "training_args.resume_from_checkpoint", "training_args.report_to",
        "training_args.fp16", "peft_config.r", "packing"]


def test_transformers_has_the_last_word_only_when_the_rules_pass():
    out = problems(with_args(eval_strategy="no", lr_scheduler_type="reduce_lr_on_plateau"))
    assert out == ["`training_args`: transformers rejects these arguments: lr_scheduler_type reduce_lr_on_plateau requires "
                   "an eval strategy. Fix the field it names."]
    out = problems(with_args(eval_strategy="no", lr_scheduler_type="reduce_lr_on_plateau", learning_rate=0))
    assert len(out) == 1 and "learning_rate" in out[0]  # one fix at a time where transformers would repeat it


def test_finetune_config_is_a_plain_dataclass():
    cfg = validate(BASE)
    assert dataclasses.is_dataclass(cfg) and cfg.output_dir.as_posix() == "output"


# ---------------------------------------------------------------- evaluation choices

GEN, LOSS = {"predict_with_generate": True}, {"predict_with_generate": False}


def test_metric_for_best_model_must_be_one_the_evaluation_logs():
    assert problems(with_args(**GEN, metric_for_best_model="eval_loss")) == [
        "`training_args.metric_for_best_model`: must be one of rouge-1, rouge-2, rouge-l, bleu-4, exact_match, got 'eval_loss'. "
        "(predict_with_generate is true: evaluation logs the scores of generated replies, no eval_loss. "
        "Set predict_with_generate: false to compare eval_loss.)"]
    assert problems(with_args(**LOSS, metric_for_best_model="rouge-l")) == [
        "`training_args.metric_for_best_model`: must be loss (or eval_loss), got 'rouge-l'. (predict_with_generate is false: "
        "evaluation logs only eval_loss, the loss on the reply tokens. Set predict_with_generate: true to compare rouge-l.)"]
    # predict_with_generate left out: transformers' default false, so the loss
    assert problems(with_args(predict_with_generate=..., metric_for_best_model="los")) == [
        "`training_args.metric_for_best_model`: must be loss (or eval_loss), got 'los'. Did you mean `loss`? "
        "(predict_with_generate is false: evaluation logs only eval_loss, the loss on the reply tokens.)"]
    assert trainer_default("predict_with_generate") is False
    for ok in (with_args(**LOSS, metric_for_best_model="eval_loss"), with_args(**GEN, metric_for_best_model="eval_rouge-l")):
        validate(ok)


def test_load_best_model_needs_a_metric_only_when_generating():
    assert problems(with_args(**GEN, load_best_model_at_end=True)) == [
        "`training_args.metric_for_best_model`: is not set, but load_best_model_at_end is true and predict_with_generate is "
        "true: evaluation generates replies and logs no eval_loss to compare. Set metric_for_best_model: rouge-l (or rouge-1, "
        "rouge-2, bleu-4, exact_match), or predict_with_generate: false for eval_loss."]
    cfg = validate(with_args(**LOSS, load_best_model_at_end=True))  # transformers compares eval_loss
    assert cfg.training_arguments().metric_for_best_model == "loss" and not cfg.generates


def test_predict_with_generate_note_says_what_evaluation_computes():
    loss_note = ("each evaluation computes the loss on the reply tokens of val_file (eval_loss), with no generation and no "
                 "ROUGE/BLEU. Set it true to score generated replies.")
    assert validate(with_args(**LOSS)).notes == [f"training_args.predict_with_generate is false: {loss_note}"]
    assert validate(with_args(predict_with_generate=...)).notes == [f"training_args.predict_with_generate is not set (transformers' default: false): {loss_note}"]
    assert validate(with_args(**GEN)).notes == [] and validate(with_args(**GEN)).generates


def test_early_stopping_key():
    es = {**with_args(**GEN, metric_for_best_model="rouge-l"), "early_stopping": {"patience": 0, "treshold": -1}}
    assert problems(es) == ["`early_stopping.treshold`: unknown key. Did you mean `threshold`?",
                            "`early_stopping.patience`: must be >= 1, got 0. It counts evaluations without improvement."]
    assert problems({**with_args(**LOSS), "early_stopping": {"threshold": -1}}) == [
        "`early_stopping.patience`: is required: how many evaluations in a row may fail to improve metric_for_best_model "
        "before training stops, e.g. patience: 3.",
        "`early_stopping.threshold`: must be a number >= 0, got -1. It is how much metric_for_best_model must improve to "
        "count as better (0: any improvement).",
        "`training_args.metric_for_best_model`: is not set, but early_stopping compares it at every evaluation. Set "
        "metric_for_best_model: loss (with predict_with_generate: false) or rouge-l (with predict_with_generate: true)."]
    assert problems({**BASE, "early_stopping": [3]}) == [
        "`early_stopping`: must be a mapping such as {patience: 3, threshold: 0.0}, got [3] (a list)."]
    assert problems({**with_args(**LOSS, eval_strategy="no", metric_for_best_model="loss"), "early_stopping": {"patience": 3}}) == [
        "`early_stopping`: needs evaluations, but training_args.eval_strategy is 'no'. Set eval_strategy: steps (with "
        "eval_steps), or remove early_stopping."]
    cfg = validate({**with_args(**GEN, metric_for_best_model="rouge-l"), "early_stopping": {"patience": 3}})
    assert cfg.notes == ["early_stopping is set without training_args.load_best_model_at_end: training stops, and the adapter "
                         "is the last step's, not the best evaluation's. Set load_best_model_at_end: true to keep the best."]
    cfg = validate({**with_args(**LOSS, load_best_model_at_end=True), "early_stopping": {"patience": 2, "threshold": 0.01}})
    assert cfg.early_stopping == {"patience": 2, "threshold": 0.01} and cfg.to_dict()["early_stopping"] == cfg.early_stopping
    assert "early_stopping" not in validate(BASE).to_dict()  # gluekit's keys are written only when set


def test_eval_samples_key():
    assert problems({**BASE, "eval_samples": 0}) == [
        "`eval_samples`: must be >= 1, got 0. It is how many val_file samples each evaluation during training scores."]
    cfg = validate({**with_args(**GEN, eval_strategy="no"), "eval_samples": 5})
    assert cfg.eval_samples == 5 and cfg.notes == [
        "eval_samples is set but training_args.eval_strategy is 'no': nothing is evaluated during training, so it changes nothing.",
        "eval_samples is 5 and data_config.test_file is not set: the whole val_file is never scored. Set test_file (GLM-4's "
        "configs use the same dev.jsonl) to score it whole after training."]
