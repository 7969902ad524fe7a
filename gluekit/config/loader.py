"""Read a config file as GLM-4's reference script does: YAML 1.2 with ruamel.yaml, plus ``a.b=value`` overrides.

YAML 1.2 reads ``learning_rate: 5e-4`` as the float 0.0005 (PyYAML, a YAML 1.1 reader, returns the
string ``'5e-4'``, which transformers accepts and the optimizer later rejects). The reader also keeps
each field's line, so every problem the rules find is reported as ``file:line``. A syntax error
becomes one line saying where, what, and the usual fix.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..errors import ConfigError
from .files import find_config
from .rules import validate
from .schema import FinetuneConfig


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


def _read_text(path: Path, source: str) -> str:
    """The file as text: UTF-8 (a Windows byte-order mark dropped), or a ConfigError naming the byte."""
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
    return text[1:] if text.startswith("\ufeff") else text


def load_config(path: str | Path, overrides: Iterable[str] | dict | None = None,
                data_dir: str | Path | None = None, *, check_machine: bool = False) -> FinetuneConfig:
    """Read, override and validate a config file. ``data_dir`` (if given) checks the data files exist.

    A bare name that is not a file in the current folder (``"tiny.yaml"``) reads the copy shipped
    with gluekit, and the first note says so. ``check_machine=True`` also reports what keeps this
    machine from running the config (``gluekit check`` and training; planning does not need it).

    >>> cfg = load_config("configs/lora.yaml", ["training_args.max_steps=200"])
    >>> cfg.training_args["learning_rate"], cfg.training_args["max_steps"]
    (0.0005, 200)
    """
    path, shipped_note = find_config(path)
    source = path.name
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a directory. Give a .yaml file such as configs/lora.yaml.", None)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found. Check the path (it is relative to the current folder).", None)
    cfg = load_config_text(_read_text(path, source), source, overrides, data_dir, cfg_dir=path.parent,
                           check_machine=check_machine)
    cfg.path = path
    if shipped_note:
        cfg.notes.insert(0, shipped_note)
    return cfg


def read_tree(text: str, source: str = "<text>"):
    """The YAML 1.2 round-trip tree of a config's text (comments and line numbers kept), or a ConfigError."""
    try:
        return _yaml().load(text)
    except MarkedYAMLError as e:
        raise ConfigError(_yaml_problem(e, source), source) from None
    except YAMLError as e:
        raise ConfigError(f"invalid YAML: {str(e).strip()}", source) from None


def load_config_text(text: str, source: str = "<text>", overrides: Iterable[str] | dict | None = None,
                     data_dir: str | Path | None = None, *, cfg_dir: str | Path | None = None,
                     check_machine: bool = False) -> FinetuneConfig:
    """:func:`load_config` of a config's text: the same reading, overrides and problems, which name
    ``source`` and the text's lines. ``cfg_dir``: the folder relative paths in the config start from
    (a DeepSpeed file); the returned config has no ``path``."""
    tree = read_tree(text, source)
    lines = _lines(tree)
    raw = _plain(tree)
    early: list[str] = []
    if isinstance(raw, dict):
        try:
            raw = apply_overrides(raw, overrides)
        except ConfigError as e:  # report with the file's own problems
            early = e.problems
    return validate(raw, source=source, lines=lines, data_dir=data_dir,
                    cfg_dir=Path(cfg_dir) if cfg_dir is not None else None, problems=early, check_machine=check_machine)
