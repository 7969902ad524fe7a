"""CPU end-to-end runs of the real recipe on the tiny GLM."""
import contextlib
import io
import json

import pytest

from gluekit import load_config
from gluekit.checkpoints import list_checkpoints, training_log
from gluekit.errors import ConfigError
from gluekit.plan import make_plan
from gluekit.train import run_config, train


def small(configs, out, *extra):
    return load_config(f"{configs}/tiny.yaml", [
        "training_args.max_steps=12", "training_args.logging_steps=1", "training_args.save_steps=5",
        "training_args.eval_steps=6", "training_args.log_level=warning", f"training_args.output_dir={out}", *extra])


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, demo_dir):
    import os

    configs = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")
    out = tmp_path_factory.mktemp("run") / "out"
    cfg = small(configs, out)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = train(cfg, demo_dir, print_logs=False)
    result.printed = printed.getvalue()
    return cfg, out, result


def test_print_logs_false_prints_no_log_records(short_run):
    _, _, result = short_run
    assert len(result.trainer.state.log_history) > 12  # 12 loss records and more were logged ...
    assert "'loss'" not in result.printed and "step " not in result.printed  # ... and none was printed


def test_checkpoints_logs_and_metrics_follow_the_plan(short_run):
    cfg, out, result = short_run
    plan = make_plan(cfg.training_arguments(), 600)
    assert [p.name for p in list_checkpoints(out)] == plan.checkpoints == ["checkpoint-5", "checkpoint-10", "checkpoint-12"]
    log = training_log(out)
    assert [e["step"] for e in log if "loss" in e] == plan.log_steps == list(range(1, 13))
    assert [e["learning_rate"] for e in log if "loss" in e] == pytest.approx(plan.learning_rates)
    evals = [e for e in log if "eval_rouge-1" in e]
    assert [e["step"] for e in evals] == plan.eval_steps == [6, 12]
    assert all(e["eval_samples"] == 67 for e in evals)  # the whole dev set, one sample per assistant turn
    assert not any("eval_loss" in e for e in log)
    assert set(result.test_metrics) >= {"test_rouge-1", "test_rouge-2", "test_rouge-l", "test_bleu-4", "test_exact_match"}


def test_adapter_and_checkpoint_files(short_run):
    _, out, result = short_run
    for folder in [result.adapter_dir] + list_checkpoints(out):
        assert (folder / "adapter_model.safetensors").is_file()
        assert not (folder / "adapter_model.bin").exists()  # weights in safetensors only
    ck = out / "checkpoint-12"
    for name in ("optimizer.pt", "scheduler.pt", "trainer_state.json", "adapter_config.json"):
        assert (ck / name).is_file(), name
    preds = (out / "eval_predictions" / "test-step-12.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(preds) == 67 and {"prompt", "prediction", "reference"} <= set(json.loads(preds[0]))
    summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    assert summary["resumed_from"] is None and summary["world_size"] == 1
    assert set(summary) == {"train", "test", "lengths", "resumed_from", "world_size"}
    assert not list(out.rglob("*.tmp"))  # every atomic write was renamed into place


def test_resume_continues_to_the_same_adapter(short_run, demo_dir, configs):
    from safetensors.torch import load_file

    cfg, out, _ = short_run
    # from checkpoint-5 into a copy, then compare the final adapter with the straight run's
    import shutil

    other = out.parent / "resumed"
    shutil.copytree(out / "checkpoint-5", other / "checkpoint-5")
    res = train(small(configs, other), demo_dir, resume=5, print_logs=False)
    assert res.resumed_from.name == "checkpoint-5"
    a = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(other / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    steps = [e["step"] for e in training_log(other) if "loss" in e]
    assert steps == list(range(1, 13))  # the history before the checkpoint travels with it


# The acceptance bar (configs/tiny.yaml on the demo data, >= 90% exact answers on dev) is notebook 00's
# 600-step run, which nbval re-runs in the same test command and compares with its stored scores
# (test_exact_match 91): one run of those two minutes, not two.


# ---------------------------------------------------------------- keyword Trainer arguments


def test_keyword_arguments_meet_the_config_checks(configs, demo_dir, tmp_path):
    """``train(path, data, max_steps="x")`` fails as the same override in ``overrides=`` does, before any model loads."""
    path = f"{configs}/tiny.yaml"
    with pytest.raises(ConfigError) as by_dict:
        train(path, demo_dir, overrides={"training_args.max_steps": "x"})
    with pytest.raises(ConfigError) as by_keyword:
        train(path, demo_dir, max_steps="x")
    assert str(by_keyword.value) == str(by_dict.value)
    assert "`training_args.max_steps`: must be an integer, got 'x' (a string)." in str(by_keyword.value)
    with pytest.raises(ConfigError) as with_strings:  # -o strings and keywords together: the keyword wins
        train(path, demo_dir, overrides=["training_args.max_steps=5"], max_steps="x")
    assert str(with_strings.value) == str(by_dict.value)
    cfg = load_config(path, [f"training_args.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"`training_args.learning_rate`: is far above any usable LoRA rate, got 1000000.0"):
        train(cfg, demo_dir, learning_rate=1e6)  # a FinetuneConfig is validated again
    with pytest.raises(ConfigError, match=r"`training_args.max_step`: is not a Seq2SeqTrainingArguments field. Did you mean `max_steps`\?"):
        train(cfg, demo_dir, max_step=5)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # refused before anything was written


def test_run_config_applies_keywords_without_changing_the_given_config(configs, demo_dir):
    cfg = load_config(f"{configs}/tiny.yaml")
    ran = run_config(cfg, {"training_args.save_steps": 7}, demo_dir, max_steps=3, output_dir="elsewhere")
    assert (ran.training_args["max_steps"], ran.training_args["save_steps"]) == (3, 7)
    assert ran.output_dir.name == "elsewhere" and ran.path == cfg.path
    assert cfg.training_args["max_steps"] != 3 and cfg.output_dir.name != "elsewhere"  # the caller's object is untouched
    assert run_config(cfg) is cfg  # nothing to apply: used as it is
    from_file = run_config(f"{configs}/tiny.yaml", ["training_args.max_steps=5"], demo_dir, save_steps=7)
    assert (from_file.training_args["max_steps"], from_file.training_args["save_steps"]) == (5, 7)


# ---------------------------------------------------------------- evaluation choices: eval loss, early stopping, a subset


def test_loss_evaluation_stops_early_and_keeps_the_best(tmp_path, configs, demo_dir):
    """predict_with_generate false: eval_loss on a fixed subset, early stopping as planned, the best checkpoint kept."""
    from safetensors.torch import load_file

    from gluekit.data import eval_subset
    from gluekit.plan import plan_evaluation

    out = tmp_path / "out"
    # threshold far above any improvement: every evaluation after the first counts as "no better"
    cfg = small(configs, out, "training_args.predict_with_generate=false", "training_args.eval_steps=2",
                "training_args.save_steps=2", "training_args.per_device_train_batch_size=4",
                "training_args.load_best_model_at_end=true", "training_args.metric_for_best_model=eval_loss",
                "early_stopping={patience: 1, threshold: 1000}", "eval_samples=10")
    planned = plan_evaluation(cfg, make_plan(cfg.training_arguments(), 600), 40, 40)
    assert planned.earliest_stop == 4 and planned.per_evaluation == 10 and planned.seconds_per_sample is None
    result = train(cfg, demo_dir, print_logs=False)
    state = result.trainer.state
    assert state.global_step == planned.earliest_stop < 12  # stopped at the 2nd evaluation, as planned
    evals = [e for e in training_log(out) if "eval_loss" in e]  # trainer_state.json as written
    assert [e["step"] for e in evals] == [2, 4] and all(e["eval_samples"] == 10 for e in evals)
    assert not any("eval_rouge-1" in e for e in evals) and not (out / "eval_predictions").exists()  # nothing generated
    best = min(evals, key=lambda e: e["eval_loss"])
    assert state.best_metric == best["eval_loss"] and state.best_model_checkpoint == str(out / f"checkpoint-{best['step']}")
    a = load_file(str(result.adapter_dir / "adapter_model.safetensors"))  # the best checkpoint, loaded at the end
    b = load_file(str(out / f"checkpoint-{best['step']}" / "adapter_model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0
    assert result.test_metrics["test_samples"] == 40 and "test_loss" in result.test_metrics  # the test file whole
    trainer = result.trainer
    assert len(trainer.eval_dataset) == 10 and eval_subset(40, 10, 42) != eval_subset(40, 10, 43) == eval_subset(40, 10, 43)
    ds = trainer.eval_dataset.select(range(4))
    label_only = trainer.evaluate_loss(ds)["eval_loss"]  # gluekit's prediction_step: logits where labels are
    trainer.label_only_logits = False
    assert trainer.evaluate_loss(ds)["eval_loss"] == pytest.approx(label_only, rel=1e-5)  # the Trainer's own: every position
