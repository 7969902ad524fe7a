"""The validation rules, torchtune-style: a list of small functions, each checking one thing.

Every rule reads a :class:`Context` and adds what it finds to ``ctx.problems`` (with the file line)
or ``ctx.notes``; :func:`validate` runs them all, so ONE :class:`ConfigError` lists every problem.
``RULES`` run in order over the whole file; the ``training_args`` rule runs ``TRAINING_ARGS_RULES``
(``training_rules``) when that section is a mapping. The last training-args rule and the end of the
PEFT rule hand the config to transformers and PEFT, whose own checks catch what these rules do not know.

Defaults come from transformers (``Context.arg``), never typed again here. Rules never change the
values they check: ``FinetuneConfig`` holds the user's values as written.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError
from .checks import Context, Problems, Rule, check_bool, check_int, check_typed, did_you_mean, field_kind, is_number, kind
from .schema import DATA_CONFIG_KEYS, EARLY_STOPPING_KEYS, TOP_LEVEL_KEYS, DataConfig, FinetuneConfig
from .training_rules import TRAINING_ARGS_RULES


# ---------------------------------------------------------------- the file's top level


def unknown_keys(p: Problems, field: str, mapping: dict, allowed) -> None:
    """One problem per key of ``mapping`` (the value of ``field``) that is not in ``allowed``, with a did-you-mean."""
    for k in mapping:
        if k not in allowed:
            hint = did_you_mean(str(k), allowed) or f" Allowed: {', '.join(allowed)}."
            p.add(f"{field}.{k}", f"unknown key.{hint}")

def top_level_keys(ctx: Context) -> None:
    for k in ctx.raw:
        if k not in TOP_LEVEL_KEYS:
            ctx.problems.add(str(k), f"unknown top-level key.{did_you_mean(str(k), TOP_LEVEL_KEYS)} Allowed: {', '.join(TOP_LEVEL_KEYS)}.")


def data_config(ctx: Context) -> None:
    p, dc, data_dir = ctx.problems, ctx.raw.get("data_config"), ctx.data_dir
    if dc is None:
        p.add("data_config", "is missing. Add data_config: {train_file: train.jsonl, val_file: dev.jsonl, test_file: dev.jsonl}.")
        return
    if not isinstance(dc, dict):
        p.add("data_config", f"must be a mapping with train_file (and val_file, test_file, num_proc), got {dc!r}.")
        return
    unknown_keys(p, "data_config", dc, DATA_CONFIG_KEYS)
    dir_missing = data_dir is not None and not Path(data_dir).is_dir()
    if dir_missing:
        p.add("data_config", f"the data directory {data_dir} does not exist. Pass the folder holding the JSONL files (--data-dir).")
    for k in ("train_file", "val_file", "test_file"):
        v = dc.get(k)
        if k == "train_file" and v is None:
            p.add("data_config.train_file", "is required (a JSONL file name, relative to the data directory).")
        elif v is not None and not isinstance(v, str):
            p.add(f"data_config.{k}", f"must be a file name, got {v!r} ({kind(v)}).")
        elif v is not None and data_dir is not None and not dir_missing and not (Path(data_dir) / v).is_file():
            if (Path(data_dir) / v).is_dir():
                p.add(f"data_config.{k}", f"{v!r} is a directory in data directory {data_dir}; name a .jsonl file.")
            else:
                p.add(f"data_config.{k}", f"file {v!r} not found in data directory {data_dir}.")
    if dc.get("num_proc") is not None:
        check_int(p, "data_config.num_proc", dc["num_proc"], 1, " Use 1 (or leave it out) to tokenise in this process.")
    ctx.data = DataConfig(**{k: dc.get(k) for k in DATA_CONFIG_KEYS})


def combine(ctx: Context) -> None:
    comb = ctx.raw.get("combine", True)
    if not isinstance(comb, bool):
        ctx.problems.add("combine", f"must be true or false, got {comb!r} ({kind(comb)}).")


def lengths(ctx: Context) -> None:
    for k in ("max_input_length", "max_output_length"):
        if k not in ctx.raw:
            ctx.problems.add(k, "is required: a length in tokens (the reference uses 512).")
        else:
            check_int(ctx.problems, k, ctx.raw[k], 1, " It counts tokens, not characters.")


def training_args(ctx: Context) -> None:
    """The section's shape; when it is a mapping, every rule of ``TRAINING_ARGS_RULES``."""
    ta = ctx.raw.get("training_args")
    if ta is None:
        ctx.problems.add("training_args", "is missing. Add a training_args mapping (output_dir, max_steps, learning_rate, ...) as in configs/lora.yaml.")
    elif not isinstance(ta, dict):
        ctx.problems.add("training_args", f"must be a mapping of Seq2SeqTrainingArguments fields, got {ta!r}.")
    else:
        for rule in TRAINING_ARGS_RULES:
            rule(ctx)


def packing(ctx: Context) -> None:
    """The top-level ``packing`` switch: a YAML boolean, default false.

    Packing flattens each batch into one row, so the batch size (samples per step), steps per
    epoch and epochs stay as training_args says; only the padding goes.
    """
    v = ctx.raw.get("packing", False)
    if not check_bool(ctx.problems, "packing", v):
        return
    ctx.packing = v
    if v and ctx.arg("per_device_train_batch_size") == 1:
        ctx.notes.append("packing is true but per_device_train_batch_size is 1: a one-sample batch has no padding, so packing changes nothing.")


def freeze_v(ctx: Context) -> None:
    if "freezeV" in ctx.raw:
        ctx.notes.append("freezeV is read only by GLM-4V's vision fine-tuning script; it has no effect on text models.")


def quantization(ctx: Context) -> None:
    """The top-level ``quantization`` mapping: ``BitsAndBytesConfig`` fields (gluekit.quantization).

    Whether the card can compute in the chosen dtype is checked where the card is known
    (``gluekit.cards.preflight``, run by check/plan/train).
    """
    from .. import quantization as q

    v = ctx.raw.get("quantization")
    if v is None:
        return
    p = ctx.problems
    if not isinstance(v, dict):
        p.add("quantization", f"must be a mapping of BitsAndBytesConfig fields, got {v!r} ({kind(v)}). "
              "Write quantization: {load_in_4bit: true} for a 4-bit base.")
        return
    fields = q.bnb_fields()
    for k, val in v.items():
        path = f"quantization.{k}"
        if k not in fields:
            hint = did_you_mean(str(k), fields) or f" Allowed: {', '.join(fields)}."
            p.add(path, f"unknown key.{hint}")
        elif k in q.BOOL_KEYS:
            check_bool(p, path, val)
        elif k in ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage") and val not in q.COMPUTE_DTYPES + (("uint8",) if "storage" in k else ()):
            p.add(path, f"must be one of {', '.join(q.COMPUTE_DTYPES)}, got {val!r}. float32 works everywhere; bfloat16 needs a card with bf16.")
        elif k == "bnb_4bit_quant_type" and val not in q.QUANT_TYPES:
            p.add(path, f"must be nf4 or fp4, got {val!r}.{did_you_mean(str(val), q.QUANT_TYPES)} QLoRA uses nf4.")
    if v.get("load_in_4bit") is True and v.get("load_in_8bit") is True:
        p.add("quantization", "load_in_4bit and load_in_8bit are both true. Choose one (4-bit is QLoRA's).")
    if q.enabled(v) and not q.available():
        message = f"needs the bitsandbytes package, which is not installed. Install it: {q.INSTALL_HINT}."
        if ctx.check_machine:
            p.add("quantization", message)
        else:
            ctx.notes.append(f"`quantization` {message}")
    if q.enabled(v) and ctx.raw.get("peft_config") is None:
        p.add("quantization", "a quantized base cannot be trained without an adapter (full fine-tuning needs real "
              "weights). Add a peft_config (LoRA) or remove quantization.")


def early_stopping(ctx: Context) -> None:
    """gluekit's ``early_stopping: {patience, threshold}``: evaluations to watch and a metric to watch.

    transformers' EarlyStoppingCallback compares ``metric_for_best_model`` at every evaluation (which
    metrics exist is ``training_rules.best_metric``'s concern); it needs evaluations and a metric.
    """
    es, p = ctx.raw.get("early_stopping"), ctx.problems
    if es is None:
        return
    if not isinstance(es, dict):
        p.add("early_stopping", f"must be a mapping such as {{patience: 3, threshold: 0.0}}, got {es!r} ({kind(es)}).")
        return
    unknown_keys(p, "early_stopping", es, EARLY_STOPPING_KEYS)
    if "patience" not in es:
        p.add("early_stopping.patience", "is required: how many evaluations in a row may fail to improve "
              "metric_for_best_model before training stops, e.g. patience: 3.")
    else:
        check_int(p, "early_stopping.patience", es["patience"], 1, " It counts evaluations without improvement.")
    th = es.get("threshold")
    if th is not None and (not is_number(th) or not math.isfinite(th) or th < 0):
        p.add("early_stopping.threshold", f"must be a number >= 0, got {th!r}. It is how much metric_for_best_model "
              "must improve to count as better (0: any improvement).")
    ta = ctx.ta
    strategy = ctx.arg("eval_strategy")
    if strategy == "no":
        p.add("early_stopping", f"needs evaluations, but training_args.eval_strategy is {strategy!r}. "
              "Set eval_strategy: steps (with eval_steps), or remove early_stopping.")
    falls_back_to_loss = ta.get("load_best_model_at_end") is True and not ctx.arg("predict_with_generate")
    if ta.get("metric_for_best_model") is None and not falls_back_to_loss:
        p.add("training_args.metric_for_best_model", "is not set, but early_stopping compares it at every evaluation. "
              "Set metric_for_best_model: loss (with predict_with_generate: false) or rouge-l (with predict_with_generate: true).")
    elif ta.get("load_best_model_at_end") is not True:
        ctx.notes.append("early_stopping is set without training_args.load_best_model_at_end: training stops, and the "
                         "adapter is the last step's, not the best evaluation's. Set load_best_model_at_end: true to keep the best.")


def eval_samples(ctx: Context) -> None:
    """gluekit's ``eval_samples: N``: a whole number; it matters only when training evaluates."""
    v = ctx.raw.get("eval_samples")
    if v is None:
        return
    if not check_int(ctx.problems, "eval_samples", v, 1, " It is how many val_file samples each evaluation during training scores."):
        return
    if ctx.arg("eval_strategy") == "no":
        ctx.notes.append("eval_samples is set but training_args.eval_strategy is 'no': nothing is evaluated during training, so it changes nothing.")
    dc = ctx.raw.get("data_config")
    if isinstance(dc, dict) and dc.get("test_file") is None:
        ctx.notes.append(f"eval_samples is {v} and data_config.test_file is not set: the whole val_file is never scored. "
                         "Set test_file (GLM-4's configs use the same dev.jsonl) to score it whole after training.")


# ---------------------------------------------------------------- peft_config

def peft_config(ctx: Context) -> None:
    pc = ctx.raw.get("peft_config")
    if pc is None:
        return
    if not isinstance(pc, dict):
        ctx.problems.add("peft_config", f"must be a mapping (peft_type, r, ...), got {pc!r}.")
        return
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING, PeftType, TaskType, get_peft_config

    p = ctx.problems
    types_ = [t.value for t in PeftType]
    pt = pc.get("peft_type")
    if pt is None:
        p.add("peft_config.peft_type", "is missing. Add peft_type: LORA (or PREFIX_TUNING for ptuning_v2.yaml).")
        return
    if pt not in types_:
        p.add("peft_config.peft_type", f"unknown PEFT type, got {pt!r}.{did_you_mean(str(pt), types_)} "
              f"Write it in capitals: LORA, PREFIX_TUNING, ... ({len(types_)} types).")
        return
    cls = PEFT_TYPE_TO_CONFIG_MAPPING[pt]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in pc:
        if k not in fields and k != "peft_type":
            hint = did_you_mean(k, fields) or " Delete it."
            p.add(f"peft_config.{k}", f"is not a {cls.__name__} field.{hint}")
        elif k not in ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules") and pc[k] is not None:
            check_typed(p, f"peft_config.{k}", pc[k], field_kind(fields[k].type), None)
    tt = pc.get("task_type")
    tasks = [t.value for t in TaskType]
    if tt is not None and tt not in tasks:
        p.add("peft_config.task_type", f"unknown task type, got {tt!r}.{did_you_mean(str(tt), tasks)} GLM-4 is a decoder: use CAUSAL_LM.")
    if pt == "LORA":
        _lora_values(p, pc)
    if not p.any_under("peft_config"):
        try:  # PEFT's own __post_init__ checks, e.g. options that exclude each other
            get_peft_config(copy.deepcopy(pc))
        except (ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            p.add("peft_config", f"PEFT rejects it: {first.rstrip('.')}. Fix the field it names.")


def _lora_values(p: Problems, pc: dict) -> None:
    if "r" in pc:
        check_int(p, "peft_config.r", pc["r"], 1, " The rank is usually 8 to 64.")
    a = pc.get("lora_alpha")
    if a is not None and (not is_number(a) or a <= 0 or not math.isfinite(a)):
        p.add("peft_config.lora_alpha", f"must be a positive number, got {a!r}. lora.yaml uses 32 (scaling = lora_alpha / r).")
    d = pc.get("lora_dropout")
    if d is not None and (not is_number(d) or not 0 <= d < 1):
        p.add("peft_config.lora_dropout", f"must be in [0, 1), got {d!r}. 0.05-0.1 is usual.")
    tm = pc.get("target_modules")
    if tm is not None and not (isinstance(tm, str) and tm.strip() or (isinstance(tm, list) and tm and all(isinstance(t, str) and t for t in tm))):
        p.add("peft_config.target_modules", f"must be a module name or a non-empty list of names, got {tm!r}. "
              "For GLM-4: [query_key_value] (remote code) or [q_proj, k_proj, v_proj] (-hf), or all-linear.")


def swanlab(ctx: Context) -> None:
    """GLM-4's top-level ``swanlab`` key: what it does here, as notes, never a problem."""
    from ..trackers import swanlab_notes

    ctx.notes.extend(swanlab_notes(ctx.raw.get("swanlab")))


RULES: list[Rule] = [top_level_keys, data_config, combine, lengths, training_args, peft_config, packing, quantization, freeze_v,
                     swanlab, early_stopping, eval_samples]


def validate(raw: Any, *, source: str | None = None, lines: dict[str, int] | None = None,
             data_dir: str | Path | None = None, cfg_dir: Path | None = None,
             problems: Iterable[str] = (), check_machine: bool = False) -> FinetuneConfig:
    """Validate a parsed config tree; return a :class:`FinetuneConfig` or raise :class:`ConfigError`.

    ``problems``: lines already found by the caller (e.g. malformed overrides), reported first.
    ``check_machine``: also report what keeps THIS machine from running it (the deepspeed package
    missing); without it such things are notes, so a laptop can plan a GPU run.
    """
    p = Problems(source, lines or {})
    p.items.extend(problems)
    if not isinstance(raw, dict):
        what = "empty" if raw is None else f"{kind(raw)} ({raw!r:.40})"
        raise ConfigError(p.items + [f"the file must be a YAML mapping with data_config, training_args, ...; it is {what}. "
                                     "Start from configs/lora.yaml."], source)
    ctx = Context(copy.deepcopy(raw), p, data_dir=data_dir, cfg_dir=cfg_dir, check_machine=check_machine)
    for rule in RULES:
        rule(ctx)
    if p.items:
        raise ConfigError(p.items, source)
    raw = ctx.raw
    return FinetuneConfig(
        data_config=ctx.data, combine=raw.get("combine", True), max_input_length=raw["max_input_length"],
        max_output_length=raw["max_output_length"], training_args=ctx.ta, peft_config=raw.get("peft_config"),
        freezeV=raw.get("freezeV"), packing=ctx.packing, quantization=raw.get("quantization"), notes=ctx.notes,
        config_dir=cfg_dir, swanlab=raw.get("swanlab"), early_stopping=raw.get("early_stopping"),
        eval_samples=raw.get("eval_samples"),
    )
