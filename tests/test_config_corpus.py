"""A corpus of broken configs: every one makes ``gluekit check`` exit 1, list ALL its problems
in one go ("N config problem(s)"), name the field and the fix, and print no traceback.

Each case starts from ``BASE`` (a valid tiny config on the demo data) and breaks it with text
edits, so the line numbers in the messages are real. ``n`` is the exact number of problems.
"""
from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from gluekit.cli import main

BASE = """\
data_config:
  train_file: train.jsonl
  val_file: dev.jsonl
  num_proc: 1
combine: false
max_input_length: 256
max_output_length: 64
training_args:
  output_dir: ./out
  max_steps: 30
  learning_rate: 3.0e-3
  per_device_train_batch_size: 8
  save_strategy: steps
  save_steps: 10
  eval_strategy: steps
  eval_steps: 10
  logging_steps: 5
  log_level: warning
  predict_with_generate: true
  report_to: none
  generation_config:
    max_new_tokens: 16
peft_config:
  peft_type: LORA
  task_type: CAUSAL_LM
  r: 8
  lora_alpha: 32
  lora_dropout: 0.1
  target_modules: all-linear
"""


def edit(*pairs: str, text: str = BASE) -> str:
    """BASE with each (old, new) replacement applied; every ``old`` must be present once."""
    assert len(pairs) % 2 == 0
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


@dataclass
class Case:
    name: str
    text: str | bytes
    expect: list[str]
    n: int = 1
    args: list[str] = field(default_factory=list)


CASES = [
    # ---- unknown keys, at every level
    Case("top_level_typo", edit("training_args:", "trainig_args:"),
         ["bad.yaml:8: `trainig_args`: unknown top-level key. Did you mean `training_args`?",
          "`training_args`: is missing. Add a training_args mapping"], n=2),
    Case("data_config_typo", edit("  train_file:", "  trian_file:"),
         ["bad.yaml:2: `data_config.trian_file`: unknown key. Did you mean `train_file`?",
          "`data_config.train_file`: is required"], n=2),
    Case("data_config_unknown_no_match", edit("  num_proc: 1", "  shuffle: true"),
         ["`data_config.shuffle`: unknown key. Allowed: train_file, val_file, test_file, num_proc."]),
    Case("training_args_typo", edit("  learning_rate:", "  learning_rat:"),
         ["bad.yaml:11: `training_args.learning_rat`: is not a Seq2SeqTrainingArguments field. Did you mean `learning_rate`?"]),
    Case("training_args_unknown_no_match", edit("  report_to: none", "  report_to: none\n  my_own_option: 3"),
         ["`training_args.my_own_option`: is not a Seq2SeqTrainingArguments field. Delete it"]),
    Case("peft_typo", edit("  lora_alpha:", "  lora_alhpa:"),
         ["bad.yaml:27: `peft_config.lora_alhpa`: is not a LoraConfig field. Did you mean `lora_alpha`?"]),
    Case("generation_config_typo", edit("    max_new_tokens: 16", "    max_new_token: 16"),
         ["`training_args.generation_config.max_new_token`: is not a GenerationConfig field. Did you mean `max_new_tokens`?"]),
    # ---- wrong types
    Case("quoted_learning_rate", edit("learning_rate: 3.0e-3", 'learning_rate: "5e-4"'),
         ["bad.yaml:11: `training_args.learning_rate`: must be a number, got '5e-4' (a string). Write it unquoted, e.g. 5.0e-4 or 0.0005."]),
    Case("quoted_max_steps", edit("max_steps: 30", 'max_steps: "30"'),
         ["`training_args.max_steps`: must be an integer, got '30' (a string). Write it unquoted."]),
    Case("float_max_steps", edit("max_steps: 30", "max_steps: 30.5"),
         ["`training_args.max_steps`: must be an integer, got 30.5 (a number). Write a whole number."]),
    Case("quoted_bool", edit("predict_with_generate: true", 'predict_with_generate: "true"'),
         ["`training_args.predict_with_generate`: must be true or false, got 'true' (a string). Write true or false, unquoted."]),
    Case("yaml11_yes", edit("predict_with_generate: true", "predict_with_generate: yes"),
         ["`training_args.predict_with_generate`: must be true or false, got 'yes' (a string). YAML 1.2 (GLM-4's reader) takes yes/no/on/off as text"]),
    Case("combine_yes", edit("combine: false", "combine: yes"),
         ["bad.yaml:5: `combine`: must be true or false, got 'yes' (a string)."]),
    Case("lengths", edit("max_input_length: 256\n", "max_input_length: '512'\n", "max_output_length: 64\n", ""),
         ["`max_input_length`: must be an integer, got '512' (a string). Write it unquoted. It counts tokens, not characters.",
          "`max_output_length`: is required: a length in tokens"], n=2),
    Case("empty_value", edit("learning_rate: 3.0e-3", "learning_rate:"),
         ["bad.yaml:11: `training_args.learning_rate`: is empty. Give a value (the default is 5e-05) or delete the line."]),
    Case("output_dir_number", edit("output_dir: ./out", "output_dir: 5"),
         ["`training_args.output_dir`: must be text, got 5 (an integer). Put it in quotes."]),
    Case("data_config_scalar", edit("data_config:\n  train_file: train.jsonl\n  val_file: dev.jsonl\n  num_proc: 1\n",
                                    "data_config: train.jsonl\n", "  eval_strategy: steps\n", "  eval_strategy: 'no'\n"),
         ["`data_config`: must be a mapping with train_file (and val_file, test_file, num_proc), got 'train.jsonl'."]),
    Case("generation_config_scalar", edit("  generation_config:\n    max_new_tokens: 16\n", "  generation_config: 512\n"),
         ["`training_args.generation_config`: must be a mapping such as {max_new_tokens: 512}, got 512."]),
    # ---- impossible values
    Case("max_steps_zero", edit("max_steps: 30", "max_steps: 0"),
         ["bad.yaml:10: `training_args.max_steps`: must be > 0 (or -1 to use num_train_epochs), got 0."]),
    Case("max_steps_negative", edit("max_steps: 30", "max_steps: -5"),
         ["`training_args.max_steps`: must be > 0 (or -1 to use num_train_epochs), got -5."]),
    Case("epochs_zero", edit("max_steps: 30", "num_train_epochs: 0"),
         ["`training_args.num_train_epochs`: must be > 0, got 0. Set it, or set max_steps instead."]),
    Case("steps_zero_and_negative", edit("save_steps: 10", "save_steps: 0", "eval_steps: 10", "eval_steps: -10"),
         ["`training_args.save_steps`: must be > 0 (an integer step count, or a fraction of max_steps below 1), got 0.",
          "`training_args.eval_steps`: must be > 0 (an integer step count, or a fraction of max_steps below 1), got -10."], n=2),
    Case("steps_fractional_above_one", edit("logging_steps: 5", "logging_steps: 2.5"),
         ["`training_args.logging_steps`: must be a whole number of steps (or a fraction below 1), got 2.5."]),
    Case("batch_zero", edit("per_device_train_batch_size: 8", "per_device_train_batch_size: 0"),
         ["`training_args.per_device_train_batch_size`: must be >= 1, got 0."]),
    Case("learning_rate_negative", edit("learning_rate: 3.0e-3", "learning_rate: -1.0e-4"),
         ["`training_args.learning_rate`: must be > 0, got -0.0001. LoRA usually uses 1e-4 to 1e-3"]),
    Case("learning_rate_huge", edit("learning_rate: 3.0e-3", "learning_rate: 5"),
         ["`training_args.learning_rate`: is far above any usable LoRA rate, got 5. Typical values are 1e-4 to 3e-3."]),
    Case("learning_rate_nan", edit("learning_rate: 3.0e-3", "learning_rate: .nan"),
         ["`training_args.learning_rate`: must be a finite number, got nan."]),
    Case("dropout", edit("lora_dropout: 0.1", "lora_dropout: 1.5"),
         ["bad.yaml:28: `peft_config.lora_dropout`: must be in [0, 1), got 1.5. 0.05-0.1 is usual."]),
    Case("rank", edit("  r: 8", '  r: "8"', "lora_alpha: 32", "lora_alpha: -32"),
         ["`peft_config.r`: must be an integer, got '8' (a string). Write it unquoted.",
          "`peft_config.lora_alpha`: must be a positive number, got -32."], n=2),
    Case("num_proc_zero", edit("num_proc: 1", "num_proc: 0"),
         ["`data_config.num_proc`: must be >= 1, got 0. Use 1 (or leave it out)"]),
    # ---- choices
    Case("eval_strategy_typo", edit("eval_strategy: steps", "eval_strategy: step"),
         ["`training_args.eval_strategy`: must be one of no, steps, epoch, got 'step'. Did you mean `steps`?"]),
    Case("scheduler_typo", edit("report_to: none", "report_to: none\n  lr_scheduler_type: cosin"),
         ["`training_args.lr_scheduler_type`: must be one of linear, cosine,", "got 'cosin'. Did you mean `cosine`?"]),
    Case("optim_unknown", edit("report_to: none", "report_to: none\n  optim: adamw"),
         ["`training_args.optim`: must be one of adamw_torch,", "got 'adamw'. Did you mean `adamw_torch`?"]),
    Case("report_to_unknown", edit("report_to: none", "report_to: wandbb"),
         ["`training_args.report_to`: unknown logging integration 'wandbb'. Did you mean `wandb`? Use none, or one of"]),
    Case("log_level_typo", edit("log_level: warning", "log_level: warn"),
         ["`training_args.log_level`: must be one of debug, info, warning, error, critical, passive, got 'warn'. Did you mean `warning`?"]),
    Case("eval_without_val_file", edit("  val_file: dev.jsonl\n", ""),
         ["`training_args.eval_strategy`: is 'steps' but data_config.val_file is not set. Set a val_file or use eval_strategy: no."]),
    Case("peft_type_unknown", edit("peft_type: LORA", "peft_type: LORRA"),
         ["bad.yaml:24: `peft_config.peft_type`: unknown PEFT type, got 'LORRA'. Did you mean `LORA`? Write it in capitals"]),
    Case("peft_type_lowercase", edit("peft_type: LORA", "peft_type: lora"),
         ["`peft_config.peft_type`: unknown PEFT type, got 'lora'. Did you mean `LORA`?"]),
    Case("peft_type_missing", edit("  peft_type: LORA\n", ""),
         ["`peft_config.peft_type`: is missing. Add peft_type: LORA"]),
    Case("task_type", edit("task_type: CAUSAL_LM", "task_type: CAUSAL"),
         ["`peft_config.task_type`: unknown task type, got 'CAUSAL'. Did you mean `CAUSAL_LM`? GLM-4 is a decoder: use CAUSAL_LM."]),
    Case("peft_bias_choice", edit("lora_dropout: 0.1", "lora_dropout: 0.1\n  bias: some"),
         ["`peft_config.bias`: must be one of none, all, lora_only, got 'some'."]),
    Case("target_modules_empty", edit("target_modules: all-linear", "target_modules: []"),
         ["`peft_config.target_modules`: must be a module name or a non-empty list of names, got []. For GLM-4: [query_key_value]"]),
    Case("target_modules_numbers", edit("target_modules: all-linear", "target_modules: [1, 2]"),
         ["`peft_config.target_modules`: must be a module name or a non-empty list of names, got [1, 2]."]),
    Case("target_modules_match_nothing", edit("target_modules: all-linear", "target_modules: [qkv_proj, o_proj]"),
         ["`peft_config.target_modules`: ['qkv_proj'] match no layer of this model. Its linear layers are:", "down_proj",
          "(or use \"all-linear\")"]),
    # ---- cross-field rules
    Case("load_best_save_not_multiple", edit("save_steps: 10", "save_steps: 15",
                                             "report_to: none", "report_to: none\n  load_best_model_at_end: true\n  metric_for_best_model: rouge-l"),
         ["`training_args.save_steps`: must be a multiple of eval_steps (10) when load_best_model_at_end is true, got 15. Use save_steps: 20."]),
    Case("load_best_without_metric", edit("report_to: none", "report_to: none\n  load_best_model_at_end: true"),
         ["`training_args.metric_for_best_model`: is not set, but load_best_model_at_end is true", "Set metric_for_best_model: rouge-l"]),
    Case("load_best_eval_loss", edit("report_to: none", "report_to: none\n  load_best_model_at_end: true\n  metric_for_best_model: eval_loss"),
         ["`training_args.metric_for_best_model`: must be one of rouge-1, rouge-2, rouge-l, bleu-4, exact_match, got 'eval_loss'. "
          "(predict_with_generate is true: evaluation logs the scores of generated replies, no eval_loss."]),
    Case("early_stopping_without_evaluation", edit("  eval_strategy: steps\n", "  eval_strategy: 'no'\n",
                                                   "report_to: none", "report_to: none\n  metric_for_best_model: rouge-l")
         + "early_stopping: {patience: 2}\n",
         ["`early_stopping`: needs evaluations, but training_args.eval_strategy is 'no'."]),
    Case("fp16", edit("report_to: none", "report_to: none\n  fp16: true"),
         ["`training_args.fp16`: GLM-4 gives NaN losses in float16, got fp16: true. Use bf16: true"]),
    Case("resume_in_config", edit("report_to: none", "report_to: none\n  resume_from_checkpoint: ./out/checkpoint-10"),
         ["`training_args.resume_from_checkpoint`: is not read by the Trainer", "--resume latest"]),
    Case("transformers_cross_check", edit("eval_strategy: steps", "eval_strategy: 'no'", "report_to: none",
                                          "report_to: none\n  lr_scheduler_type: reduce_lr_on_plateau"),
         ["`training_args`: transformers rejects these arguments: lr_scheduler_type reduce_lr_on_plateau requires an eval "
          "strategy. Fix the field it names."]),
    Case("removed_warmup_ratio", edit("report_to: none", "report_to: none\n  warmup_ratio: 0.1\n  save_safetensors: false"),
         ["`training_args.warmup_ratio`: was removed in transformers 5. Rename it to `warmup_steps` (a value below 1 is a fraction",
          "`training_args.save_safetensors`: was removed in transformers 5. Delete it; transformers 5 always saves weights as safetensors."], n=2),
    Case("deepspeed_missing", edit("report_to: none", "report_to: none\n  deepspeed: configs/ds_zero_4.json"),
         ["bad.yaml:21: `training_args.deepspeed`: file 'configs/ds_zero_4.json' not found (looked at configs/ds_zero_4.json and ",
          "/configs/ds_zero_4.json). A relative path is looked up in the current folder, then beside the config file; "
          "fix the path or delete the key."]),
    Case("removed_transformers_names", edit("  eval_strategy: steps\n", "  evaluation_strategy: steps\n",
                                            "report_to: none", "report_to: none\n  no_cuda: true\n  overwrite_output_dir: true"),
         ["bad.yaml:15: `training_args.evaluation_strategy`: was removed in transformers 5. Rename it to `eval_strategy`.",
          "`training_args.no_cuda`: was removed in transformers 5. Rename it to `use_cpu`.",
          "`training_args.overwrite_output_dir`: was removed in transformers 5. Delete it; choose resume or a fresh output_dir"], n=3),
    # ---- the file itself
    Case("empty_file", "", ["the file must be a YAML mapping with data_config, training_args, ...; it is empty."]),
    Case("comments_only", "# lora.yaml\n# nothing here\n", ["it is empty."]),
    Case("not_a_mapping", "- train.jsonl\n- dev.jsonl\n", ["the file must be a YAML mapping", "it is a list"]),
    Case("scalar_file", "learning_rate=5e-4\n", ["it is a string ('learning_rate=5e-4')"]),
    Case("tab_indent", edit("  max_steps: 30", "\tmax_steps: 30"),
         ["bad.yaml:10:1: invalid YAML: found character '\\t' that cannot start any token", "YAML forbids tabs for indentation; use spaces."]),
    Case("unclosed_bracket", edit("target_modules: all-linear", "target_modules: [q_proj, v_proj") + "freezeV: true\n",
         ["bad.yaml:30:", "invalid YAML: expected ',' or ']'", "(while parsing a flow sequence started on line 29)",
          "Close the bracket"]),
    Case("missing_colon", edit("  max_steps: 30", "  max_steps 30"),
         ["bad.yaml:10:3: invalid YAML: could not find expected ':'. Write `key: value` (a colon and a space)."]),
    Case("bad_indent", edit("  max_steps: 30", "   max_steps: 30"),
         ["bad.yaml:10:", "invalid YAML: mapping values are not allowed here", "Check the indentation"]),
    Case("duplicate_key", edit("  save_steps: 10", "  save_steps: 10\n  save_steps: 20"),
         ["bad.yaml:15:", "invalid YAML: found duplicate key \"save_steps\"", "Keep one of the two entries."]),
    Case("gbk_file", ("# 学习率\n" + BASE).encode("gb18030"),
         ["bad.yaml:1: not UTF-8 text (byte ", "It reads as GBK/GB18030", "Save the file as UTF-8."]),
    # ---- the command line and the data directory
    Case("bad_overrides", BASE, ["override `training_args.max_steps`: expected FIELD.PATH=VALUE, got no '='.",
                                 "override `training_args.seed=[1,`: the value '[1,' is not valid YAML",
                                 "`training_arg`: unknown top-level key. Did you mean `training_args`?"], n=3,
         args=["-o", "training_args.max_steps", "-o", "training_args.seed=[1,", "-o", "training_arg.max_steps=5"]),
    Case("override_makes_it_wrong", BASE, ["`training_args.learning_rate`: must be a number, got '5e-4 ' (a string)."],
         args=["-o", "training_args.learning_rate='5e-4 '"]),
    Case("data_dir_without_files", BASE, ["`data_config.train_file`: file 'train.jsonl' not found in data directory",
                                          "`data_config.val_file`: file 'dev.jsonl' not found in data directory"], n=2,
         args=["--data-dir", "{tmp}"]),
    Case("data_dir_absent", BASE, ["`data_config`: the data directory", "does not exist. Pass the folder holding the JSONL files"],
         args=["--data-dir", "{tmp}/nowhere"]),
]

KITCHEN_SINK = edit(
    "  train_file: train.jsonl", "  trian_file: train.jsonl",
    "combine: false", "combine: 'false'",
    "max_steps: 30", "max_steps: 0",
    "learning_rate: 3.0e-3", "learning_rate: '5e-4'",
    "  eval_strategy: steps\n", "  evaluation_strategy: steps\n",
    "peft_type: LORA", "peft_type: LORRA",
) + "freezeV: True\nepochs: 3\n"


def run_check(tmp_path, case: Case, capsys):
    cfg = tmp_path / "bad.yaml"
    if isinstance(case.text, bytes):
        cfg.write_bytes(case.text)
    else:
        cfg.write_text(case.text, encoding="utf-8")
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    rc = main(["check", str(cfg), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_corpus_is_large_enough():
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)


def test_base_config_is_valid(tmp_path, capsys):
    rc, out, err = run_check(tmp_path, Case("base", BASE, []), capsys)
    assert rc == 0, err
    assert "OK" in out and err == ""


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_check_reports_every_problem(case, tmp_path, capsys):
    rc, out, err = run_check(tmp_path, case, capsys)
    assert rc == 1, (out, err)
    assert "Traceback" not in out + err
    assert "OK" not in out
    head = re.search(r"(\d+) config problem\(s\)", err)
    assert head, err
    assert int(head.group(1)) == case.n, err
    assert err.count("\n  - ") == case.n, err
    for fragment in case.expect:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    for line in err.splitlines()[1:]:  # every problem names its field (or the file/override)
        assert re.search(r"`[^`]+`|invalid YAML|not UTF-8|the file must be|override", line), line


def test_kitchen_sink_lists_all_problems_at_once(tmp_path, capsys):
    rc, _, err = run_check(tmp_path, Case("sink", KITCHEN_SINK, []), capsys)
    assert rc == 1
    expected = [
        "bad.yaml:2: `data_config.trian_file`: unknown key. Did you mean `train_file`?",
        "`data_config.train_file`: is required",
        "bad.yaml:5: `combine`: must be true or false, got 'false' (a string).",
        "bad.yaml:10: `training_args.max_steps`: must be > 0",
        "bad.yaml:11: `training_args.learning_rate`: must be a number, got '5e-4' (a string).",
        "bad.yaml:15: `training_args.evaluation_strategy`: was removed in transformers 5. Rename it to `eval_strategy`.",
        "bad.yaml:24: `peft_config.peft_type`: unknown PEFT type, got 'LORRA'. Did you mean `LORA`?",
        "bad.yaml:31: `epochs`: unknown top-level key.",
    ]
    for e in expected:
        assert e in err, f"{e!r} not in:\n{err}"
    assert f"{len(expected)} config problem(s) in bad.yaml" in err


def test_missing_config_file(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "config file" in err and "nope.yaml' not found" in err and "Traceback" not in err


def test_real_process_prints_no_traceback(tmp_path):
    """The same through ``python -m gluekit check``: exit status 1, problems on stderr, nothing else."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(KITCHEN_SINK, encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "gluekit", "check", str(cfg)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert r.stderr.startswith("gluekit check: 8 config problem(s) in bad.yaml:\n"), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
