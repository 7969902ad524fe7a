"""Load and validate GLM-4's ``lora.yaml`` (and its siblings) before any model loads.

The file is read as YAML 1.2 with ruamel.yaml, exactly as GLM-4's reference script does,
so ``learning_rate: 5e-4`` is the float 0.0005 (PyYAML, a YAML 1.1 reader, returns the
string ``'5e-4'``, which transformers accepts and the optimizer later rejects).

Validation collects every problem and raises one :class:`ConfigError`; each line reads
"``file:line`` `field.path`: problem, got VALUE. How to fix."
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import importlib.util
import io
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import ConfigError

TOP_LEVEL_KEYS = (
    "data_config", "combine", "max_input_length", "max_output_length",
    "training_args", "peft_config", "freezeV",
    # gluekit's own key (not in GLM-4's files): padding-free batches (FinetuneConfig.packing). Each
    # batch is flattened into one row, so samples per step, steps per epoch and epochs are unchanged.
    "packing",
)
DATA_CONFIG_KEYS = ("train_file", "val_file", "test_file", "num_proc")
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
INTERVALS = ("no", "steps", "epoch")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical", "passive")


def _yaml() -> YAML:
    y = YAML(typ="rt", pure=True)  # round-trip keeps line numbers; scalars follow YAML 1.2
    y.version = (1, 2)
    return y


def parse_scalar(text: str) -> Any:
    """Parse one override value with the same YAML 1.2 rules as the file (``5e-4`` -> 0.0005)."""
    y = YAML(typ="safe", pure=True)
    y.version = (1, 2)
    return y.load(io.StringIO(text))


def _plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dict/list/str (so ``deepcopy`` and ``==`` behave)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _lines(node: Any, prefix: str = "", out: dict | None = None) -> dict[str, int]:
    """Map each field path (``training_args.learning_rate``) to its 1-based line in the file."""
    out = {} if out is None else out
    if isinstance(node, dict) and hasattr(node, "lc"):
        for k in node:
            path = f"{prefix}{k}"
            try:
                out[path] = node.lc.key(k)[0] + 1
            except Exception:  # keys added by overrides have no position
                pass
            _lines(node[k], path + ".", out)
    return out


def did_you_mean(key: str, choices: Iterable[str]) -> str:
    """`` Did you mean `x`?`` for the closest choice (case-insensitive), or ``""``."""
    choices = [str(c) for c in choices]
    lower = {c.lower(): c for c in choices}
    k = str(key).lower()
    if k in lower:  # only the case differs
        return f" Did you mean `{lower[k]}`?"
    if len(k) >= 3:  # a cut-off name: the first choice it starts (adamw -> adamw_torch, not grokadamw)
        for c in choices:
            if c.lower().startswith(k):
                return f" Did you mean `{c}`?"
    close = difflib.get_close_matches(k, list(lower), n=1, cutoff=0.6)
    return f" Did you mean `{lower[close[0]]}`?" if close else ""


def apply_overrides(raw: dict, overrides: Iterable[str] | dict | None) -> dict:
    """Apply ``a.b.c=value`` overrides (strings) or a ``{"a.b.c": value}`` dict to a config tree.

    ``raw`` is changed in place and returned. Every malformed override is listed in one
    :class:`ConfigError` (raised after the well-formed ones were applied).
    """
    if not overrides:
        return raw
    items = overrides.items() if isinstance(overrides, dict) else []
    bad = []
    if not isinstance(overrides, dict):
        parsed = []
        for text in overrides:
            if "=" not in text:
                bad.append(f"override `{text}`: expected FIELD.PATH=VALUE, got no '='. "
                           "Write it like training_args.max_steps=200.")
                continue
            k, v = text.split("=", 1)
            if not k.strip():
                bad.append(f"override `{text}`: the field path before '=' is empty. Write it like training_args.max_steps=200.")
                continue
            try:
                parsed.append((k.strip(), parse_scalar(v)))
            except YAMLError as e:
                why = getattr(e, "problem", None) or str(e).splitlines()[0]
                bad.append(f"override `{text}`: the value {v!r} is not valid YAML ({why}). Quote it or fix the brackets.")
        items = parsed
    for path, value in items:
        node = raw
        parts = str(path).split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    if bad:
        raise ConfigError(bad)
    return raw


@dataclass
class DataConfig:
    """``data_config``: data files, relative to the data directory given at run time."""

    train_file: str
    """JSONL training file, one ``{"messages": [...]}`` conversation per line."""
    val_file: str | None = None
    """JSONL file evaluated every ``eval_steps`` (needed when ``eval_strategy`` is not ``no``)."""
    test_file: str | None = None
    """JSONL file predicted once after training."""
    num_proc: int | None = None
    """Processes for tokenisation (``datasets.Dataset.map(num_proc=...)``); None or 1 = in-process."""


@dataclass
class FinetuneConfig:
    """A validated ``lora.yaml``. Build the ecosystem objects with the methods below."""

    data_config: DataConfig
    max_input_length: int
    """Prompt budget in TOKENS. Training uses only the sum with max_output_length."""
    max_output_length: int
    """Reply budget in TOKENS."""
    training_args: dict = field(default_factory=dict)
    """Passed whole to ``Seq2SeqTrainingArguments`` (``generation_config`` becomes a GenerationConfig)."""
    peft_config: dict | None = None
    """Passed to ``peft.get_peft_config``; None means full fine-tuning (``sft.yaml``)."""
    combine: bool = True
    """True: loss on the last reply only; False: loss on every assistant turn. Never 'concatenate or not'."""
    freezeV: bool | None = None
    """Read only by GLM-4V's vision script; no effect on text models."""
    packing: bool = False
    """gluekit's own key (GLM-4's files lack it). True: padding-free training batches. The
    ``per_device_train_batch_size`` samples of a batch are laid end to end in ONE row with no padding
    (``gluekit.packing.PackCollator``): position ids restart at 0 for each sample, each sample's first
    label is -100, and each sample attends only to itself (a block-causal mask). Losses and gradients
    equal those of the padded batch; samples per step, steps per epoch and epochs are unchanged, only
    the padding tokens (and their compute) disappear. Needs a transformers-native model (e.g.
    ``glm-4-9b-chat-hf``), not remote code. Evaluation batches are never packed."""
    path: Path | None = None
    notes: list[str] = field(default_factory=list)
    """Non-fatal remarks found while validating (printed by ``gluekit check``)."""

    @property
    def max_length(self) -> int:
        """Training sequences are cut to this many tokens (the reference's ``+ 1`` is for the stop token)."""
        return self.max_input_length + self.max_output_length + 1

    def training_arguments(self, base_generation_config=None, **overrides: Any):
        """``Seq2SeqTrainingArguments`` built from ``training_args`` (plus keyword overrides).

        ``base_generation_config`` (the model's own) keeps its stop tokens: Seq2SeqTrainer
        replaces the model's generation config with the one in the arguments.
        """
        from transformers import Seq2SeqTrainingArguments

        args = {k: v for k, v in self.training_args.items() if k != "generation_config"}
        args.setdefault("output_dir", str(self.output_dir))  # transformers 5 would use ./trainer_output
        args["generation_config"] = self.generation_config(base_generation_config)
        args.update(overrides)
        return Seq2SeqTrainingArguments(**args)

    def generation_config(self, base=None):
        """``training_args.generation_config`` as a ``GenerationConfig``, laid over ``base`` if given."""
        from transformers import GenerationConfig

        gen = copy.deepcopy(base) if base is not None else GenerationConfig()
        gen.update(**dict(self.training_args.get("generation_config") or {}))
        return gen

    def peft_config_object(self):
        """The PEFT config object (``LoraConfig``, ``PrefixTuningConfig``...), or None for full SFT."""
        if self.peft_config is None:
            return None
        from peft import get_peft_config

        return get_peft_config(copy.deepcopy(self.peft_config))

    @property
    def output_dir(self) -> Path:
        return Path(self.training_args.get("output_dir", "./output"))

    def to_dict(self) -> dict:
        d = {
            "data_config": dataclasses.asdict(self.data_config),
            "combine": self.combine,
            "max_input_length": self.max_input_length,
            "max_output_length": self.max_output_length,
            "training_args": copy.deepcopy(self.training_args),
        }
        if self.peft_config is not None:
            d["peft_config"] = copy.deepcopy(self.peft_config)
        if self.freezeV is not None:
            d["freezeV"] = self.freezeV
        if self.packing:  # written only when on: GLM-4's own files never carry it
            d["packing"] = True
        return d


class _Problems:
    """Collects problems with their file position."""

    def __init__(self, source: str | None, lines: dict[str, int]):
        self.source, self.lines, self.items = source, lines, []

    def add(self, path: str, message: str) -> None:
        where = ""
        line = self.lines.get(path) or self.lines.get(path.rsplit(".", 1)[0])
        if self.source and line:
            where = f"{self.source}:{line}: "
        self.items.append(f"{where}`{path}`: {message}")


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping", type(None): "empty"}.get(type(v), type(v).__name__)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_int(p: _Problems, path: str, v: Any, minimum: int, hint: str = "") -> bool:
    if not isinstance(v, int) or isinstance(v, bool):
        extra = " Write it unquoted." if isinstance(v, str) else ""
        if isinstance(v, float):
            extra = " Write a whole number."
        p.add(path, f"must be an integer, got {v!r} ({_kind(v)}).{extra}{hint}")
        return False
    if v < minimum:
        p.add(path, f"must be >= {minimum}, got {v}.{hint}")
        return False
    return True


def _check_number(p: _Problems, path: str, v: Any, field_default: Any = 0.0) -> bool:
    """A real, finite number (YAML 1.2 reads ``.nan``/``.inf`` as floats: training would diverge)."""
    if _is_number(v):
        if not math.isfinite(v):
            p.add(path, f"must be a finite number, got {v!r}. Write an ordinary number such as 0.0005.")
            return False
        return True
    fix = " Write it unquoted, e.g. 5.0e-4 or 0.0005." if isinstance(v, str) else ""
    want = "a number" if isinstance(field_default, float) else "an integer"
    p.add(path, f"must be {want}, got {v!r} ({_kind(v)}).{fix}")
    return False


def _check_bool(p: _Problems, path: str, v: Any) -> bool:
    if isinstance(v, bool):
        return True
    fix = " Write true or false, unquoted."
    if isinstance(v, str) and v.lower() in ("yes", "no", "on", "off", "y", "n"):
        fix = " YAML 1.2 (GLM-4's reader) takes yes/no/on/off as text: write true or false."
    elif isinstance(v, int):
        fix = " Write true or false instead of a number."
    p.add(path, f"must be true or false, got {v!r} ({_kind(v)}).{fix}")
    return False


def _field_kind(tp: Any) -> Any:
    """``"bool"``, ``"int"``, ``"float"``, ``"str"``, an Enum class, or None for a dataclass field type."""
    if isinstance(tp, str):  # postponed annotations (PEFT): the plain ones and Literal[...]
        if tp.startswith("Literal[") and tp.endswith("]"):
            import ast

            try:
                values = ast.literal_eval("(" + tp[len("Literal["):-1] + ",)")
            except (ValueError, SyntaxError):
                return None
            return tuple(values) if all(isinstance(v, str) for v in values) else None
        return tp if tp in ("bool", "int", "float", "str") else None
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    args = tuple(a for a in args if a is not type(None))
    simple = {(bool,): "bool", (int,): "int", (float,): "float", (str,): "str"}
    if args in simple:
        return simple[args]
    enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
    if len(enums) == 1 and set(args) <= {enums[0], str}:
        return enums[0]
    return None


def _allows_none(tp: Any) -> bool:
    if isinstance(tp, str):
        return "None" in tp or "Optional" in tp
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _one_of(values: list[str], limit: int = 8) -> str:
    return ", ".join(values) if len(values) <= limit else ", ".join(values[:limit]) + f", ... ({len(values)} in all)"


def _check_typed(p: _Problems, path: str, v: Any, kind: Any, default: Any) -> bool:
    """Check ``v`` against a field kind from :func:`_field_kind`; False if a problem was added."""
    if kind == "bool":
        return _check_bool(p, path, v)
    if kind == "int":
        return _check_int(p, path, v, -(2 ** 63))
    if kind == "float":
        return _check_number(p, path, v, 0.0)
    if kind == "str":
        if not isinstance(v, str):
            p.add(path, f"must be text, got {v!r} ({_kind(v)}). Put it in quotes.")
            return False
        return True
    if isinstance(kind, tuple) or isinstance(kind, type) and issubclass(kind, enum.Enum):
        allowed = list(kind) if isinstance(kind, tuple) else [str(e.value) for e in kind]
        if v not in allowed:
            p.add(path, f"must be one of {_one_of(allowed)}, got {v!r}.{did_you_mean(str(v), allowed)}")
            return False
    return True


# What gluekit's evaluation logs (``eval_`` + these); it generates, so there is no eval loss.
EVAL_METRICS = ("rouge-1", "rouge-2", "rouge-l", "bleu-4", "exact_match")
# Flags that depend on the machine: checked when training starts, not by ``gluekit check``.
DEVICE_DEPENDENT_ARGS = ("bf16", "fp16", "tf32", "bf16_full_eval", "fp16_full_eval", "use_cpu", "deepspeed",
                         "fsdp", "fsdp_config", "torch_compile", "half_precision_backend")


def _check_training_args(p: _Problems, ta: dict, cfg_dir: Path | None, has_val: bool, notes: list[str]) -> None:
    from transformers import GenerationConfig, Seq2SeqTrainingArguments

    fields = {f.name: f for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init}
    before = len(p.items)
    typed_ok = {}
    for key in list(ta):
        path = f"training_args.{key}"
        v = ta[key]
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
            if not _allows_none(f.type) and f.default is not None:
                p.add(path, f"is empty. Give a value (the default is {f.default!r}) or delete the line.")
            continue
        if key == "generation_config":
            continue
        typed_ok[key] = _check_typed(p, path, v, _field_kind(f.type), f.default)

    def ok(key):  # present and of the right type
        return key in ta and ta[key] is not None and typed_ok.get(key, False)

    # Values that are well-typed but impossible.
    ms = ta.get("max_steps", -1)
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
    es = ta.get("eval_strategy", "no")
    if es in ("steps", "epoch") and not has_val:
        p.add("training_args.eval_strategy", f"is {es!r} but data_config.val_file is not set. Set a val_file or use eval_strategy: no.")
    if ta.get("load_best_model_at_end") is True:
        ss = ta.get("save_strategy", "steps")
        if ss != es and ss != "best":
            p.add("training_args.save_strategy", f"must equal eval_strategy ({es!r}) when load_best_model_at_end is true, got {ss!r}.")
        elif es == "steps" and ss == "steps":
            sv, ev = ta.get("save_steps", 500), ta.get("eval_steps") or ta.get("logging_steps", 500)
            if _is_number(sv) and _is_number(ev) and ev > 0 and sv > 0 and sv % ev:
                p.add("training_args.save_steps", f"must be a multiple of eval_steps ({ev}) when load_best_model_at_end is true, got {sv}. "
                      f"Use save_steps: {ev * max(1, round(sv / ev))}.")
        metric = ta.get("metric_for_best_model")
        known = list(EVAL_METRICS)
        if metric is None:
            p.add("training_args.metric_for_best_model", "is not set, but load_best_model_at_end is true and gluekit's evaluation "
                  f"generates replies, so there is no eval loss to compare. Set metric_for_best_model: rouge-l (or {', '.join(known[:2] + known[3:])}).")
        elif isinstance(metric, str) and metric.removeprefix("eval_") not in known:
            p.add("training_args.metric_for_best_model", f"must be one of gluekit's eval metrics {', '.join(known)}, got {metric!r}."
                  f"{did_you_mean(metric.removeprefix('eval_'), known)} (There is no eval loss: evaluation generates replies.)")
    if "resume_from_checkpoint" in ta and ta["resume_from_checkpoint"] is not None:
        p.add("training_args.resume_from_checkpoint", f"is not read by the Trainer (scripts pass it to train()), got {ta['resume_from_checkpoint']!r}. "
              "Delete it and resume with `gluekit train ... --resume latest` (or a step number).")
    rt = ta.get("report_to")
    if rt is not None and typed_ok.get("report_to", True):
        from transformers.integrations import INTEGRATION_TO_CALLBACK

        allowed = ["none", "all"] + sorted(INTEGRATION_TO_CALLBACK)
        for name in ([rt] if isinstance(rt, str) else rt if isinstance(rt, list) else [rt]):
            if name not in allowed:
                p.add("training_args.report_to", f"unknown logging integration {name!r}.{did_you_mean(str(name), allowed)} "
                      f"Use none, or one of {_one_of(allowed[2:])}.")
    if ta.get("fp16") is True:
        p.add("training_args.fp16", "GLM-4 gives NaN losses in float16, got fp16: true. Use bf16: true on a GPU that supports it, or neither.")
    gen = ta.get("generation_config")
    if gen is not None:
        if not isinstance(gen, dict):
            p.add("training_args.generation_config", f"must be a mapping such as {{max_new_tokens: 512}}, got {gen!r}.")
        else:
            known_gen = set(GenerationConfig().to_dict())
            for k, v in gen.items():
                if k not in known_gen:
                    hint = did_you_mean(k, known_gen) or " Delete it."
                    p.add(f"training_args.generation_config.{k}", f"is not a GenerationConfig field.{hint}")
            if "max_new_tokens" in gen:
                _check_int(p, "training_args.generation_config.max_new_tokens", gen["max_new_tokens"], 1)
    if ta.get("predict_with_generate") is False and es != "no":
        notes.append("training_args.predict_with_generate is false: evaluation gives no ROUGE/BLEU (gluekit always generates; eval batches carry no labels).")
    ds = ta.get("deepspeed")
    if ds is not None:
        if isinstance(ds, str):
            target = Path(ds)
            if not target.is_absolute() and cfg_dir is not None:
                target = cfg_dir / target
            if not target.is_file():
                p.add("training_args.deepspeed", f"file {ds!r} not found (looked at {target}). Paths are relative to the config file; "
                      "fix the path or delete the key.")
            else:
                ta["deepspeed"] = str(target)
                if importlib.util.find_spec("deepspeed") is None:
                    p.add("training_args.deepspeed", "is set but the deepspeed package is not installed. `pip install deepspeed` on a CUDA machine, or remove the key.")
        elif not isinstance(ds, dict):
            p.add("training_args.deepspeed", f"must be a path to a DeepSpeed JSON file, got {ds!r}.")
    if len(p.items) == before:
        # Last line of defence: let transformers check the rest (its own cross-field rules), minus the
        # flags that depend on this machine's hardware.
        args = {k: v for k, v in ta.items() if k not in DEVICE_DEPENDENT_ARGS and k != "generation_config"}
        args.setdefault("output_dir", "./output")
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Seq2SeqTrainingArguments(**args)
        except (ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            p.add("training_args", f"transformers rejects these arguments: {first.rstrip('.')}. Fix the field it names.")
        finally:
            hf_logging.set_verbosity(level)


def _check_peft(p: _Problems, pc: dict) -> None:
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING, PeftType, TaskType, get_peft_config

    types_ = [t.value for t in PeftType]
    pt = pc.get("peft_type")
    if pt is None:
        p.add("peft_config.peft_type", "is missing. Add peft_type: LORA (or PREFIX_TUNING for ptuning_v2.yaml).")
        return
    if pt not in types_:
        p.add("peft_config.peft_type", f"unknown PEFT type, got {pt!r}.{did_you_mean(str(pt), types_)} "
              f"Write it in capitals: LORA, PREFIX_TUNING, ... ({len(types_)} types).")
        return
    before = len(p.items)
    cls = PEFT_TYPE_TO_CONFIG_MAPPING[pt]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in pc:
        if k not in fields and k != "peft_type":
            hint = did_you_mean(k, fields) or " Delete it."
            p.add(f"peft_config.{k}", f"is not a {cls.__name__} field.{hint}")
        elif k not in ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules") and pc[k] is not None:
            _check_typed(p, f"peft_config.{k}", pc[k], _field_kind(fields[k].type), None)
    tt = pc.get("task_type")
    tasks = [t.value for t in TaskType]
    if tt is not None and tt not in tasks:
        p.add("peft_config.task_type", f"unknown task type, got {tt!r}.{did_you_mean(str(tt), tasks)} GLM-4 is a decoder: use CAUSAL_LM.")
    if pt == "LORA":
        if "r" in pc:
            _check_int(p, "peft_config.r", pc["r"], 1, " The rank is usually 8 to 64.")
        a = pc.get("lora_alpha")
        if a is not None and (not _is_number(a) or a <= 0 or not math.isfinite(a)):
            p.add("peft_config.lora_alpha", f"must be a positive number, got {a!r}. lora.yaml uses 32 (scaling = lora_alpha / r).")
        d = pc.get("lora_dropout")
        if d is not None and (not _is_number(d) or not 0 <= d < 1):
            p.add("peft_config.lora_dropout", f"must be in [0, 1), got {d!r}. 0.05-0.1 is usual.")
        tm = pc.get("target_modules")
        if tm is not None and not (isinstance(tm, str) and tm.strip() or (isinstance(tm, list) and tm and all(isinstance(t, str) and t for t in tm))):
            p.add("peft_config.target_modules", f"must be a module name or a non-empty list of names, got {tm!r}. "
                  "For GLM-4: [query_key_value] (remote code) or [q_proj, k_proj, v_proj] (-hf), or all-linear.")
    if len(p.items) == before:
        try:  # PEFT's own __post_init__ checks, e.g. options that exclude each other
            get_peft_config(copy.deepcopy(pc))
        except (ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            p.add("peft_config", f"PEFT rejects it: {first.rstrip('.')}. Fix the field it names.")


def _check_packing(p: _Problems, raw: dict, ta: dict, notes: list[str]) -> bool:
    """The top-level ``packing`` switch: a YAML boolean, default false.

    Packing flattens each batch into one row, so the batch size (samples per step), steps per
    epoch and epochs stay as training_args says; only the padding goes.
    """
    v = raw.get("packing", False)
    if not _check_bool(p, "packing", v):
        return False
    if v and ta.get("per_device_train_batch_size", 8) == 1:  # 8: the Trainer's default
        notes.append("packing is true but per_device_train_batch_size is 1: a one-sample batch has no padding, so packing changes nothing.")
    return v


def validate(raw: Any, *, source: str | None = None, lines: dict[str, int] | None = None,
             data_dir: str | Path | None = None, cfg_dir: Path | None = None,
             problems: Iterable[str] = ()) -> FinetuneConfig:
    """Validate a parsed config tree; return a :class:`FinetuneConfig` or raise :class:`ConfigError`.

    ``problems``: lines already found by the caller (e.g. malformed overrides), reported first.
    """
    p = _Problems(source, lines or {})
    p.items.extend(problems)
    notes: list[str] = []
    if not isinstance(raw, dict):
        what = "empty" if raw is None else f"{_kind(raw)} ({raw!r:.40})"
        raise ConfigError(p.items + [f"the file must be a YAML mapping with data_config, training_args, ...; it is {what}. "
                                     "Start from configs/lora.yaml."], source)
    raw = copy.deepcopy(raw)
    for k in raw:
        if k not in TOP_LEVEL_KEYS:
            p.add(str(k), f"unknown top-level key.{did_you_mean(str(k), TOP_LEVEL_KEYS)} Allowed: {', '.join(TOP_LEVEL_KEYS)}.")
    dc = raw.get("data_config")
    data = None
    if dc is None:
        p.add("data_config", "is missing. Add data_config: {train_file: train.jsonl, val_file: dev.jsonl, test_file: dev.jsonl}.")
    elif not isinstance(dc, dict):
        p.add("data_config", f"must be a mapping with train_file (and val_file, test_file, num_proc), got {dc!r}.")
    else:
        for k in dc:
            if k not in DATA_CONFIG_KEYS:
                hint = did_you_mean(str(k), DATA_CONFIG_KEYS) or f" Allowed: {', '.join(DATA_CONFIG_KEYS)}."
                p.add(f"data_config.{k}", f"unknown key.{hint}")
        dir_missing = data_dir is not None and not Path(data_dir).is_dir()
        if dir_missing:
            p.add("data_config", f"the data directory {data_dir} does not exist. Pass the folder holding the JSONL files (--data-dir).")
        for k in ("train_file", "val_file", "test_file"):
            v = dc.get(k)
            if k == "train_file" and v is None:
                p.add("data_config.train_file", "is required (a JSONL file name, relative to the data directory).")
            elif v is not None and not isinstance(v, str):
                p.add(f"data_config.{k}", f"must be a file name, got {v!r} ({_kind(v)}).")
            elif v is not None and data_dir is not None and not dir_missing and not (Path(data_dir) / v).is_file():
                if (Path(data_dir) / v).is_dir():
                    p.add(f"data_config.{k}", f"{v!r} is a directory in data directory {data_dir}; name a .jsonl file.")
                else:
                    p.add(f"data_config.{k}", f"file {v!r} not found in data directory {data_dir}.")
        if dc.get("num_proc") is not None:
            _check_int(p, "data_config.num_proc", dc["num_proc"], 1, " Use 1 (or leave it out) to tokenise in this process.")
        data = DataConfig(**{k: dc.get(k) for k in DATA_CONFIG_KEYS})
    comb = raw.get("combine", True)
    if not isinstance(comb, bool):
        p.add("combine", f"must be true or false, got {comb!r} ({_kind(comb)}).")
    for k in ("max_input_length", "max_output_length"):
        if k not in raw:
            p.add(k, "is required: a length in tokens (the reference uses 512).")
        else:
            _check_int(p, k, raw[k], 1, " It counts tokens, not characters.")
    ta = raw.get("training_args")
    if ta is None:
        p.add("training_args", "is missing. Add a training_args mapping (output_dir, max_steps, learning_rate, ...) as in configs/lora.yaml.")
        ta = {}
    elif not isinstance(ta, dict):
        p.add("training_args", f"must be a mapping of Seq2SeqTrainingArguments fields, got {ta!r}.")
        ta = {}
    else:
        has_val = isinstance(dc, dict) and dc.get("val_file") is not None
        _check_training_args(p, ta, cfg_dir, has_val, notes)
    pc = raw.get("peft_config")
    if pc is not None:
        if not isinstance(pc, dict):
            p.add("peft_config", f"must be a mapping (peft_type, r, ...), got {pc!r}.")
        else:
            _check_peft(p, pc)
    packing = _check_packing(p, raw, ta, notes)
    if "freezeV" in raw:
        notes.append("freezeV is read only by GLM-4V's vision fine-tuning script; it has no effect on text models.")
    if p.items:
        raise ConfigError(p.items, source)
    return FinetuneConfig(
        data_config=data, combine=comb, max_input_length=raw["max_input_length"],
        max_output_length=raw["max_output_length"], training_args=ta, peft_config=pc,
        freezeV=raw.get("freezeV"), packing=packing, notes=notes,
    )


def _yaml_problem(e: MarkedYAMLError, source: str) -> str:
    """One line for a YAML syntax error: where, what, and the usual fix."""
    problem = str(e.problem or e.context or "syntax error").strip()
    mark, ctx = e.problem_mark, e.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}: " if mark else ""
    also = ""
    if ctx is not None and mark is not None and ctx.line != mark.line and e.context:
        also = f" ({e.context} started on line {ctx.line + 1})"
    lowered = problem.lower()
    if "\\t" in problem or "\t" in problem:
        hint = " YAML forbids tabs for indentation; use spaces."
    elif "duplicate key" in lowered:
        hint = " Keep one of the two entries."
    elif "could not find expected ':'" in lowered:
        if ctx is not None:  # the key without its colon is where the scan started, not where it failed
            where, also = f"{source}:{ctx.line + 1}:{ctx.column + 1}: ", ""
        hint = " Write `key: value` (a colon and a space)."
    elif "mapping values are not allowed" in lowered:
        hint = " Check the indentation (spaces, two per level) and that a value with ': ' in it is quoted."
    elif "expected ',' or ']'" in lowered or "expected ',' or '}'" in lowered:
        hint = " Close the bracket on the line it opened."
    elif "end of stream" in lowered and "quoted" in str(e.context or ""):
        hint = " Close the quote."
    elif "expected <block end>" in lowered:
        hint = " Check the indentation: keys of one mapping must line up."
    else:
        hint = ""
    return f"{where}invalid YAML: {problem}{also}.{hint}"


def load_config(path: str | Path, overrides: Iterable[str] | dict | None = None,
                data_dir: str | Path | None = None) -> FinetuneConfig:
    """Read, override and validate a config file. ``data_dir`` (if given) checks the data files exist.

    >>> cfg = load_config("configs/lora.yaml", ["training_args.max_steps=200"])
    >>> cfg.training_args["learning_rate"], cfg.training_args["max_steps"]
    (0.0005, 200)
    """
    path = Path(path)
    source = path.name
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a directory. Give a .yaml file such as configs/lora.yaml.", None)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found. Check the path (it is relative to the current folder).", None)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        hint = ""
        try:
            data.decode("gb18030")
            hint = " It reads as GBK/GB18030 (a Chinese Windows encoding):"
        except UnicodeDecodeError:
            pass
        raise ConfigError(f"{source}:{line}: not UTF-8 text (byte {e.start}).{hint} Save the file as UTF-8.", source) from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark from a Windows editor
    try:
        tree = _yaml().load(text)
    except MarkedYAMLError as e:
        raise ConfigError(_yaml_problem(e, source), source) from None
    except YAMLError as e:
        raise ConfigError(f"invalid YAML: {str(e).strip()}", source) from None
    lines = _lines(tree)
    raw = _plain(tree)
    early: list[str] = []
    if isinstance(raw, dict):
        try:
            raw = apply_overrides(raw, overrides)
        except ConfigError as e:  # report with the file's own problems
            early = e.problems
    cfg = validate(raw, source=source, lines=lines, data_dir=data_dir, cfg_dir=path.parent, problems=early)
    cfg.path = path
    return cfg
