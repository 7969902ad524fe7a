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
import importlib.util
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import ConfigError

TOP_LEVEL_KEYS = (
    "data_config", "combine", "max_input_length", "max_output_length",
    "training_args", "peft_config", "freezeV",
)
DATA_CONFIG_KEYS = ("train_file", "val_file", "test_file", "num_proc")
# Arguments transformers 5 removed, and what replaced them.
REMOVED_TRAINING_ARGS = {
    "evaluation_strategy": "eval_strategy",
    "no_cuda": "use_cpu",
    "overwrite_output_dir": None,  # removed without replacement: gluekit asks how to resume instead
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
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" Did you mean `{close[0]}`?" if close else ""


def apply_overrides(raw: dict, overrides: Iterable[str] | dict | None) -> dict:
    """Apply ``a.b.c=value`` overrides (strings) or a ``{"a.b.c": value}`` dict to a config tree."""
    if not overrides:
        return raw
    items = overrides.items() if isinstance(overrides, dict) else []
    if not isinstance(overrides, dict):
        parsed = []
        for text in overrides:
            if "=" not in text:
                raise ConfigError(f"override `{text}`: expected FIELD.PATH=VALUE, e.g. training_args.max_steps=200.")
            k, v = text.split("=", 1)
            parsed.append((k.strip(), parse_scalar(v)))
        items = parsed
    for path, value in items:
        node = raw
        parts = path.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
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
        p.add(path, f"must be an integer, got {v!r} ({_kind(v)}).{extra}{hint}")
        return False
    if v < minimum:
        p.add(path, f"must be >= {minimum}, got {v}.{hint}")
        return False
    return True


def _check_number(p: _Problems, path: str, v: Any, field_default: Any) -> None:
    if _is_number(v):
        return
    fix = " Write it unquoted, e.g. 5.0e-4 or 0.0005." if isinstance(v, str) else ""
    want = "a number" if isinstance(field_default, float) else "an integer"
    p.add(path, f"must be {want}, got {v!r} ({_kind(v)}).{fix}")


def _check_training_args(p: _Problems, ta: dict, cfg_dir: Path | None, has_val: bool, notes: list[str]) -> None:
    from transformers import GenerationConfig, Seq2SeqTrainingArguments

    fields = {f.name: f for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init}
    defaults = {}
    for name, f in fields.items():
        if f.default is not dataclasses.MISSING:
            defaults[name] = f.default
    for key in list(ta):
        path = f"training_args.{key}"
        v = ta[key]
        if key in REMOVED_TRAINING_ARGS:
            new = REMOVED_TRAINING_ARGS[key]
            fix = (f"Rename it to `{new}`." if new else
                   "Delete it; choose resume or a fresh output_dir with `gluekit train --resume`.")
            p.add(path, f"was removed in transformers 5. {fix}")
            continue
        if key not in fields:
            p.add(path, f"is not a Seq2SeqTrainingArguments field.{did_you_mean(key, fields)}")
            continue
        d = defaults.get(key)
        if v is None:
            continue
        if isinstance(d, bool):
            if not isinstance(v, bool):
                p.add(path, f"must be true or false, got {v!r} ({_kind(v)}).")
        elif isinstance(d, (int, float)) and key != "generation_config":
            _check_number(p, path, v, d)
    # Values that are well-typed but impossible.
    ms = ta.get("max_steps", -1)
    if _is_number(ms) and not isinstance(ms, bool) and (ms == 0 or ms < -1):
        p.add("training_args.max_steps", f"must be > 0 (or -1 to use num_train_epochs), got {ms}.")
    if "num_train_epochs" in ta and _is_number(ta["num_train_epochs"]) and ta["num_train_epochs"] <= 0 and ms == -1:
        p.add("training_args.num_train_epochs", f"must be > 0, got {ta['num_train_epochs']}.")
    lr = ta.get("learning_rate")
    if _is_number(lr) and lr <= 0:
        p.add("training_args.learning_rate", f"must be > 0, got {lr}.")
    if _is_number(lr) and lr >= 1:
        p.add("training_args.learning_rate", f"{lr} is far above any usable LoRA rate; typical values are 1e-4 to 3e-3.")
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if key in ta and _is_number(ta[key]):
            _check_int(p, f"training_args.{key}", ta[key], 1)
    if "dataloader_num_workers" in ta and _is_number(ta["dataloader_num_workers"]):
        _check_int(p, "training_args.dataloader_num_workers", ta["dataloader_num_workers"], 0)
    for key in ("save_steps", "eval_steps", "logging_steps"):
        v = ta.get(key)
        if _is_number(v) and v <= 0:
            p.add(f"training_args.{key}", f"must be > 0 (an integer step count, or a fraction of max_steps below 1), got {v}.")
    for key in ("eval_strategy", "save_strategy", "logging_strategy"):
        v = ta.get(key)
        allowed = INTERVALS + (("best",) if key == "save_strategy" else ())
        if v is not None and v not in allowed:
            p.add(f"training_args.{key}", f"must be one of {', '.join(allowed)}, got {v!r}.{did_you_mean(str(v), allowed)}")
    if ta.get("log_level") is not None and ta.get("log_level") not in LOG_LEVELS:
        v = ta["log_level"]
        p.add("training_args.log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {v!r}.{did_you_mean(str(v), LOG_LEVELS)}")
    es = ta.get("eval_strategy", "no")
    if es in ("steps", "epoch") and not has_val:
        p.add("training_args.eval_strategy", f"is {es!r} but data_config.val_file is not set. Set a val_file or use eval_strategy: no.")
    if ta.get("load_best_model_at_end"):
        ss = ta.get("save_strategy", "steps")
        if ss != es:
            p.add("training_args.save_strategy", f"must equal eval_strategy ({es!r}) when load_best_model_at_end is true, got {ss!r}.")
        elif es == "steps":
            sv, ev = ta.get("save_steps", 500), ta.get("eval_steps") or ta.get("logging_steps", 500)
            if _is_number(sv) and _is_number(ev) and ev and sv % ev:
                p.add("training_args.save_steps", f"must be a multiple of eval_steps ({ev}) when load_best_model_at_end is true, got {sv}.")
    if ta.get("fp16"):
        p.add("training_args.fp16", "GLM-4 gives NaN losses in float16. Use bf16: true on a GPU that supports it, or neither.")
    gen = ta.get("generation_config")
    if gen is not None:
        if not isinstance(gen, dict):
            p.add("training_args.generation_config", f"must be a mapping such as {{max_new_tokens: 512}}, got {gen!r}.")
        else:
            known = set(GenerationConfig().to_dict())
            for k, v in gen.items():
                if k not in known:
                    p.add(f"training_args.generation_config.{k}", f"is not a GenerationConfig field.{did_you_mean(k, known)}")
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
                p.add("training_args.deepspeed", f"file {ds!r} not found (looked at {target}). Paths are relative to the config file.")
            else:
                ta["deepspeed"] = str(target)
                if importlib.util.find_spec("deepspeed") is None:
                    p.add("training_args.deepspeed", "is set but the deepspeed package is not installed. `pip install deepspeed` on a CUDA machine, or remove the key.")
        elif not isinstance(ds, dict):
            p.add("training_args.deepspeed", f"must be a path to a DeepSpeed JSON file, got {ds!r}.")


def _check_peft(p: _Problems, pc: dict) -> None:
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING, PeftType, TaskType

    types = [t.value for t in PeftType]
    pt = pc.get("peft_type")
    if pt is None:
        p.add("peft_config.peft_type", "is missing. Use LORA (or PREFIX_TUNING for ptuning_v2.yaml).")
        return
    if pt not in types:
        p.add("peft_config.peft_type", f"unknown PEFT type {pt!r}.{did_you_mean(str(pt), types)} Choose from {', '.join(types[:8])}, ...")
        return
    cls = PEFT_TYPE_TO_CONFIG_MAPPING[pt]
    names = {f.name for f in dataclasses.fields(cls)}
    for k in pc:
        if k not in names and k != "peft_type":
            p.add(f"peft_config.{k}", f"is not a {cls.__name__} field.{did_you_mean(k, names)}")
    tt = pc.get("task_type")
    if tt is not None and tt not in [t.value for t in TaskType]:
        p.add("peft_config.task_type", f"unknown task type {tt!r}. GLM-4 is a decoder: use CAUSAL_LM.")
    if pt == "LORA":
        if "r" in pc:
            _check_int(p, "peft_config.r", pc["r"], 1)
        a = pc.get("lora_alpha")
        if a is not None and (not _is_number(a) or a <= 0):
            p.add("peft_config.lora_alpha", f"must be a positive number, got {a!r}.")
        d = pc.get("lora_dropout")
        if d is not None and (not _is_number(d) or not 0 <= d < 1):
            p.add("peft_config.lora_dropout", f"must be in [0, 1), got {d!r}. 0.05-0.1 is usual.")
        tm = pc.get("target_modules")
        if tm is not None and not (isinstance(tm, str) or (isinstance(tm, list) and tm and all(isinstance(t, str) for t in tm))):
            p.add("peft_config.target_modules", f"must be a module name or a non-empty list of names, got {tm!r}.")


def validate(raw: Any, *, source: str | None = None, lines: dict[str, int] | None = None,
             data_dir: str | Path | None = None, cfg_dir: Path | None = None) -> FinetuneConfig:
    """Validate a parsed config tree; return a :class:`FinetuneConfig` or raise :class:`ConfigError`."""
    p = _Problems(source, lines or {})
    notes: list[str] = []
    if not isinstance(raw, dict):
        what = "empty" if raw is None else f"{_kind(raw)} ({raw!r:.40})"
        raise ConfigError(f"the file must be a YAML mapping with data_config, training_args, ...; it is {what}.", source)
    raw = copy.deepcopy(raw)
    for k in raw:
        if k not in TOP_LEVEL_KEYS:
            p.add(str(k), f"unknown top-level key.{did_you_mean(str(k), TOP_LEVEL_KEYS)} Allowed: {', '.join(TOP_LEVEL_KEYS)}.")
    dc = raw.get("data_config")
    data = None
    if not isinstance(dc, dict):
        p.add("data_config", f"must be a mapping with train_file (and val_file, test_file, num_proc), got {dc!r}.")
    else:
        for k in dc:
            if k not in DATA_CONFIG_KEYS:
                p.add(f"data_config.{k}", f"unknown key.{did_you_mean(str(k), DATA_CONFIG_KEYS)}")
        for k in ("train_file", "val_file", "test_file"):
            v = dc.get(k)
            if k == "train_file" and v is None:
                p.add("data_config.train_file", "is required (a JSONL file name, relative to the data directory).")
            elif v is not None and not isinstance(v, str):
                p.add(f"data_config.{k}", f"must be a file name, got {v!r} ({_kind(v)}).")
            elif v is not None and data_dir is not None and not (Path(data_dir) / v).is_file():
                p.add(f"data_config.{k}", f"file {v!r} not found in data directory {data_dir}.")
        if dc.get("num_proc") is not None:
            _check_int(p, "data_config.num_proc", dc["num_proc"], 1)
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
    if not isinstance(ta, dict):
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
    if "freezeV" in raw:
        notes.append("freezeV is read only by GLM-4V's vision fine-tuning script; it has no effect on text models.")
    if p.items:
        raise ConfigError(p.items, source)
    return FinetuneConfig(
        data_config=data, combine=comb, max_input_length=raw["max_input_length"],
        max_output_length=raw["max_output_length"], training_args=ta, peft_config=pc,
        freezeV=raw.get("freezeV"), notes=notes,
    )


def load_config(path: str | Path, overrides: Iterable[str] | dict | None = None,
                data_dir: str | Path | None = None) -> FinetuneConfig:
    """Read, override and validate a config file. ``data_dir`` (if given) checks the data files exist.

    >>> cfg = load_config("configs/lora.yaml", ["training_args.max_steps=200"])
    >>> cfg.training_args["learning_rate"], cfg.training_args["max_steps"]
    (0.0005, 200)
    """
    path = Path(path)
    source = path.name
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found.", None)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text (byte {e.start}). Save the file as UTF-8.", source) from None
    try:
        tree = _yaml().load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f"{source}:{mark.line + 1}:{mark.column + 1}: " if mark else ""
        hint = " YAML forbids tabs for indentation; use spaces." if "\t" in text and "\\t" in str(e.problem) else ""
        raise ConfigError(f"{line}invalid YAML: {e.problem}.{hint}", source) from None
    except YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", source) from None
    lines = _lines(tree)
    raw = _plain(tree)
    if isinstance(raw, dict):
        raw = apply_overrides(raw, overrides)
    cfg = validate(raw, source=source, lines=lines, data_dir=data_dir, cfg_dir=path.parent)
    cfg.path = path
    return cfg
