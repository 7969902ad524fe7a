"""The rules for ``training_args``, one concern each: types, ranges, evaluation and saving, the
integrations (logging, precision, generation, DeepSpeed), then transformers' own checks.

``TRAINING_ARGS_RULES`` runs in this order when ``training_args`` is a mapping (``rules.training_args``).
Defaults come from transformers through ``Context.arg``; no rule changes a value it checks.
"""
from __future__ import annotations

import logging
import warnings

from ..quiet import transformers_logs
from . import files
from .checks import Context, Rule, allows_none, check_int, check_typed, did_you_mean, field_kind, is_number, one_of
from .schema import DEFAULT_OUTPUT_DIR, DEVICE_DEPENDENT_ARGS, trainer_fields

# Arguments transformers 5 removed, and what replaced them.
REMOVED_TRAINING_ARGS = {
    "evaluation_strategy": "eval_strategy",
    "no_cuda": "use_cpu",
    "overwrite_output_dir": None,  # removed without replacement: gluekit asks how to resume instead
    "warmup_ratio": "warmup_steps",
    "per_gpu_train_batch_size": "per_device_train_batch_size",
    "per_gpu_eval_batch_size": "per_device_eval_batch_size",
    "include_inputs_for_metrics": "include_for_metrics",
    "logging_dir": None,
    "save_safetensors": None,
}
# What to write instead, for the removed names whose fix is more than a rename.
REMOVED_HINTS = {
    "overwrite_output_dir": "Delete it; choose resume or a fresh output_dir with `gluekit train --resume latest|STEP` or `--overwrite`.",
    "warmup_ratio": "Rename it to `warmup_steps` (a value below 1 is a fraction of the total steps).",
    "logging_dir": "Delete it; logging integrations choose their own folder under output_dir.",
    "save_safetensors": "Delete it; transformers 5 always saves weights as safetensors.",
}
LOG_LEVELS = ("debug", "info", "warning", "error", "critical", "passive")
# What gluekit's evaluation logs (``eval_`` + these) with predict_with_generate: true (it generates
# replies and scores them; no loss), and with false (the loss on the reply tokens, no generation).
EVAL_METRICS = ("rouge-1", "rouge-2", "rouge-l", "bleu-4", "exact_match")
LOSS_METRICS = ("loss",)


def eval_metric_names(generates: bool) -> tuple[str, ...]:
    """The metric names an evaluation logs (without ``eval_``), given ``predict_with_generate``."""
    return EVAL_METRICS if generates else LOSS_METRICS


def training_arg_types(ctx: Context) -> None:
    """Every key: a field of Seq2SeqTrainingArguments (not one transformers 5 removed), of the field's type."""
    fields, ta, p = trainer_fields(), ctx.ta, ctx.problems
    for key in list(ta):
        path, v = f"training_args.{key}", ta[key]
        if key in REMOVED_TRAINING_ARGS:
            fix = REMOVED_HINTS.get(key) or f"Rename it to `{REMOVED_TRAINING_ARGS[key]}`."
            p.add(path, f"was removed in transformers 5. {fix}")
            continue
        if key not in fields:
            hint = did_you_mean(key, fields) or " Delete it, or check the name in transformers' TrainingArguments documentation."
            p.add(path, f"is not a Seq2SeqTrainingArguments field.{hint}")
            continue
        f = fields[key]
        if v is None:  # ``key:`` with nothing after it
            if not allows_none(f.type) and f.default is not None:
                p.add(path, f"is empty. Give a value (the default is {f.default!r}) or delete the line.")
            continue
        if key == "generation_config":
            continue
        ctx.typed_ok[key] = check_typed(p, path, v, field_kind(f.type), f.default)


def training_arg_ranges(ctx: Context) -> None:
    """Values of the right type that are still impossible (0 steps, a negative rate ...)."""
    ta, p, ok = ctx.ta, ctx.problems, ctx.ok
    ms = ctx.arg("max_steps")
    if ok("max_steps") and (ms == 0 or ms < -1):
        p.add("training_args.max_steps", f"must be > 0 (or -1 to use num_train_epochs), got {ms}. Set the number of optimizer steps, e.g. 3000.")
    if ok("num_train_epochs") and ta["num_train_epochs"] <= 0 and ms == -1:
        p.add("training_args.num_train_epochs", f"must be > 0, got {ta['num_train_epochs']}. Set it, or set max_steps instead.")
    lr = ta.get("learning_rate")
    if ok("learning_rate") and lr <= 0:
        p.add("training_args.learning_rate", f"must be > 0, got {lr}. LoRA usually uses 1e-4 to 1e-3 (lora.yaml: 5e-4).")
    if ok("learning_rate") and lr >= 1:
        p.add("training_args.learning_rate", f"is far above any usable LoRA rate, got {lr}. Typical values are 1e-4 to 3e-3.")
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if ok(key) and ta[key] < 1:
            p.add(f"training_args.{key}", f"must be >= 1, got {ta[key]}.")
    if ok("dataloader_num_workers") and ta["dataloader_num_workers"] < 0:
        p.add("training_args.dataloader_num_workers", f"must be >= 0, got {ta['dataloader_num_workers']}. Use 0 to load in the main process.")
    for key in ("save_steps", "eval_steps", "logging_steps"):
        v = ta.get(key)
        if not ok(key):
            continue
        if v <= 0:
            p.add(f"training_args.{key}", f"must be > 0 (an integer step count, or a fraction of max_steps below 1), got {v}.")
        elif v > 1 and v != int(v):
            p.add(f"training_args.{key}", f"must be a whole number of steps (or a fraction below 1), got {v}.")
    for key in ("warmup_steps", "weight_decay", "max_grad_norm"):
        if ok(key) and ta[key] < 0:
            p.add(f"training_args.{key}", f"must be >= 0, got {ta[key]}.")
    if ta.get("log_level") is not None and ta.get("log_level") not in LOG_LEVELS:
        v = ta["log_level"]
        p.add("training_args.log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {v!r}.{did_you_mean(str(v), LOG_LEVELS)}")


def evaluation_needs_data(ctx: Context) -> None:
    es = ctx.arg("eval_strategy")
    dc = ctx.raw.get("data_config")
    has_val = isinstance(dc, dict) and dc.get("val_file") is not None
    if es in ("steps", "epoch") and not has_val:
        ctx.problems.add("training_args.eval_strategy", f"is {es!r} but data_config.val_file is not set. Set a val_file or use eval_strategy: no.")


def best_model(ctx: Context) -> None:
    """``load_best_model_at_end``: saves line up with evaluations, and a metric to compare exists."""
    ta, p = ctx.ta, ctx.problems
    if ta.get("load_best_model_at_end") is not True:
        return
    es, ss = ctx.arg("eval_strategy"), ctx.arg("save_strategy")
    if ss != es and ss != "best":
        p.add("training_args.save_strategy", f"must equal eval_strategy ({es!r}) when load_best_model_at_end is true, got {ss!r}.")
    elif es == "steps" and ss == "steps":
        # transformers evaluates every logging_steps when eval_steps is unset (or 0)
        sv, ev = ctx.arg("save_steps"), ctx.arg("eval_steps") or ctx.arg("logging_steps")
        if is_number(sv) and is_number(ev) and ev > 0 and sv > 0 and sv % ev:
            p.add("training_args.save_steps", f"must be a multiple of eval_steps ({ev}) when load_best_model_at_end is true, got {sv}. "
                  f"Use save_steps: {ev * max(1, round(sv / ev))}.")
    if ta.get("metric_for_best_model") is None and ctx.arg("predict_with_generate"):
        # transformers falls back to "loss", which a generating evaluation never logs
        known = list(EVAL_METRICS)
        p.add("training_args.metric_for_best_model", "is not set, but load_best_model_at_end is true and predict_with_generate is true: "
              "evaluation generates replies and logs no eval_loss to compare. "
              f"Set metric_for_best_model: rouge-l (or {', '.join(known[:2] + known[3:])}), or predict_with_generate: false for eval_loss.")


def best_metric(ctx: Context) -> None:
    """``metric_for_best_model`` (compared at every evaluation once set): one that evaluation logs."""
    metric = ctx.ta.get("metric_for_best_model")
    if not isinstance(metric, str):
        return
    generates = bool(ctx.arg("predict_with_generate"))
    known = eval_metric_names(generates)
    name = metric.removeprefix("eval_")
    if name in known:
        return
    if generates:
        why = "predict_with_generate is true: evaluation logs the scores of generated replies, no eval_loss."
        if name in LOSS_METRICS:
            why += " Set predict_with_generate: false to compare eval_loss."
    else:
        why = "predict_with_generate is false: evaluation logs only eval_loss, the loss on the reply tokens."
        if name in EVAL_METRICS:
            why += f" Set predict_with_generate: true to compare {name}."
    choices = f"one of {', '.join(known)}" if generates else "loss (or eval_loss)"
    ctx.problems.add("training_args.metric_for_best_model", f"must be {choices}, got {metric!r}.{did_you_mean(name, known)} ({why})")


def resume_in_config(ctx: Context) -> None:
    v = ctx.ta.get("resume_from_checkpoint")
    if v is not None:
        ctx.problems.add("training_args.resume_from_checkpoint", f"is not read by the Trainer (scripts pass it to train()), got {v!r}. "
                         "Delete it and resume with `gluekit train ... --resume latest` (or a step number).")


def report_to(ctx: Context) -> None:
    rt = ctx.ta.get("report_to")
    if rt is None or not ctx.typed_ok.get("report_to", True):
        return
    from transformers.integrations import INTEGRATION_TO_CALLBACK

    allowed = ["none", "all"] + sorted(INTEGRATION_TO_CALLBACK)
    for name in ([rt] if isinstance(rt, str) else rt if isinstance(rt, list) else [rt]):
        if name not in allowed:
            ctx.problems.add("training_args.report_to", f"unknown logging integration {name!r}.{did_you_mean(str(name), allowed)} "
                             f"Use none, or one of {one_of(allowed[2:])}.")
    if ctx.problems.any_under("training_args.report_to"):
        return
    from ..trackers import missing, missing_message

    for name in missing(rt):  # the package is not installed: the Trainer would stop when it starts
        if ctx.check_machine:
            ctx.problems.add("training_args.report_to", missing_message(name))
        else:
            ctx.notes.append(f"training_args.report_to {missing_message(name)} (`gluekit check` reports it as a problem).")


def precision(ctx: Context) -> None:
    if ctx.ta.get("fp16") is True:
        ctx.problems.add("training_args.fp16", "GLM-4 gives NaN losses in float16, got fp16: true. Use bf16: true on a GPU that supports it, or neither.")


def generation(ctx: Context) -> None:
    """``generation_config`` holds GenerationConfig fields; evaluation without generation gives no metrics."""
    ta, p = ctx.ta, ctx.problems
    gen = ta.get("generation_config")
    if gen is not None:
        if not isinstance(gen, dict):
            p.add("training_args.generation_config", f"must be a mapping such as {{max_new_tokens: 512}}, got {gen!r}.")
        else:
            from transformers import GenerationConfig

            known_gen = set(GenerationConfig().to_dict())
            for k in gen:
                if k not in known_gen:
                    hint = did_you_mean(k, known_gen) or " Delete it."
                    p.add(f"training_args.generation_config.{k}", f"is not a GenerationConfig field.{hint}")
            if "max_new_tokens" in gen:
                check_int(p, "training_args.generation_config.max_new_tokens", gen["max_new_tokens"], 1)
    if not ctx.arg("predict_with_generate") and ctx.arg("eval_strategy") != "no":
        how = "is false" if "predict_with_generate" in ta else "is not set (transformers' default: false)"
        ctx.notes.append(f"training_args.predict_with_generate {how}: each evaluation computes the loss on the reply tokens "
                         "of val_file (eval_loss), with no generation and no ROUGE/BLEU. Set it true to score generated replies.")


def deepspeed(ctx: Context) -> None:
    """The DeepSpeed JSON file exists (current folder, then the config's folder); with
    ``check_machine``, the deepspeed package is installed too. The value itself stays as written."""
    ds = ctx.ta.get("deepspeed")
    if ds is None:
        return
    if not isinstance(ds, str):
        if not isinstance(ds, dict):
            ctx.problems.add("training_args.deepspeed", f"must be a path to a DeepSpeed JSON file, got {ds!r}.")
        return
    if files.find_deepspeed(ds, ctx.cfg_dir) is None:
        ctx.problems.add("training_args.deepspeed", files.deepspeed_not_found(ds, ctx.cfg_dir))
    elif not files.deepspeed_installed():
        if ctx.check_machine:
            ctx.problems.add("training_args.deepspeed", files.DEEPSPEED_MISSING)
        else:
            ctx.notes.append("training_args.deepspeed is set but the deepspeed package is not installed here: this machine "
                             "can plan the run, not train it (`gluekit check` reports it as a problem).")


def transformers_accepts(ctx: Context) -> None:
    """Last line of defence: transformers' own cross-field checks, once every rule above passed.

    The flags that depend on this machine's hardware are left out (they are checked when training starts).
    """
    if ctx.problems.any_under("training_args"):
        return
    from transformers import Seq2SeqTrainingArguments

    args = {k: v for k, v in ctx.ta.items() if k not in DEVICE_DEPENDENT_ARGS and k != "generation_config"}
    args.setdefault("output_dir", DEFAULT_OUTPUT_DIR)
    try:
        with transformers_logs(logging.ERROR), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Seq2SeqTrainingArguments(**args)
    except (ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        ctx.problems.add("training_args", f"transformers rejects these arguments: {first.rstrip('.')}. Fix the field it names.")


TRAINING_ARGS_RULES: list[Rule] = [
    training_arg_types, training_arg_ranges, evaluation_needs_data, best_model, best_metric, resume_in_config,
    report_to, precision, generation, deepspeed, transformers_accepts,
]
