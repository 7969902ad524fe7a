"""The vocabulary the validation rules are written in: the :class:`Context` every rule reads, a
problem list that knows file lines, and checks of one value (an integer, a finite number, a YAML boolean, a choice) that add a problem in
gluekit's form "``file:line`` `field.path`: problem, got VALUE. How to fix." and return whether
the value was fine.
"""
from __future__ import annotations

import ast
import difflib
import enum
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .schema import DataConfig, trainer_default


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


class Problems:
    """Collects problems with their file position (``lines`` maps a field path to its 1-based line)."""

    def __init__(self, source: str | None, lines: dict[str, int]):
        self.source, self.lines, self.items = source, lines, []
        self.paths: list[str] = []  # the field path of each problem added with add()

    def add(self, path: str, message: str) -> None:
        where = ""
        line = self.lines.get(path) or self.lines.get(path.rsplit(".", 1)[0])
        if self.source and line:
            where = f"{self.source}:{line}: "
        self.items.append(f"{where}`{path}`: {message}")
        self.paths.append(path)

    def any_under(self, section: str) -> bool:
        """True when a problem was found in ``section`` (e.g. ``training_args``) or below it."""
        return any(p == section or p.startswith(section + ".") for p in self.paths)


def kind(v: Any) -> str:
    """How a message names the type of ``v`` ("a string", "an integer", "empty" ...)."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping", type(None): "empty"}.get(type(v), type(v).__name__)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_int(p: Problems, path: str, v: Any, minimum: int, hint: str = "") -> bool:
    if not isinstance(v, int) or isinstance(v, bool):
        extra = " Write it unquoted." if isinstance(v, str) else ""
        if isinstance(v, float):
            extra = " Write a whole number."
        p.add(path, f"must be an integer, got {v!r} ({kind(v)}).{extra}{hint}")
        return False
    if v < minimum:
        p.add(path, f"must be >= {minimum}, got {v}.{hint}")
        return False
    return True


def check_number(p: Problems, path: str, v: Any, field_default: Any = 0.0) -> bool:
    """A real, finite number (YAML 1.2 reads ``.nan``/``.inf`` as floats: training would diverge)."""
    if is_number(v):
        if not math.isfinite(v):
            p.add(path, f"must be a finite number, got {v!r}. Write an ordinary number such as 0.0005.")
            return False
        return True
    fix = " Write it unquoted, e.g. 5.0e-4 or 0.0005." if isinstance(v, str) else ""
    want = "a number" if isinstance(field_default, float) else "an integer"
    p.add(path, f"must be {want}, got {v!r} ({kind(v)}).{fix}")
    return False


def check_bool(p: Problems, path: str, v: Any) -> bool:
    if isinstance(v, bool):
        return True
    fix = " Write true or false, unquoted."
    if isinstance(v, str) and v.lower() in ("yes", "no", "on", "off", "y", "n"):
        fix = " YAML 1.2 (GLM-4's reader) takes yes/no/on/off as text: write true or false."
    elif isinstance(v, int):
        fix = " Write true or false instead of a number."
    p.add(path, f"must be true or false, got {v!r} ({kind(v)}).{fix}")
    return False


def field_kind(tp: Any) -> Any:
    """``"bool"``, ``"int"``, ``"float"``, ``"str"``, an Enum class, a tuple of allowed strings
    (``Literal[...]``), or None, for a dataclass field type."""
    if isinstance(tp, str):  # postponed annotations (PEFT): the plain ones and Literal[...]
        if tp.startswith("Literal[") and tp.endswith("]"):
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


def allows_none(tp: Any) -> bool:
    if isinstance(tp, str):
        return "None" in tp or "Optional" in tp
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def one_of(values: list[str], limit: int = 8) -> str:
    return ", ".join(values) if len(values) <= limit else ", ".join(values[:limit]) + f", ... ({len(values)} in all)"


def check_typed(p: Problems, path: str, v: Any, kind_: Any, default: Any) -> bool:
    """Check ``v`` against a field kind from :func:`field_kind`; False if a problem was added."""
    if kind_ == "bool":
        return check_bool(p, path, v)
    if kind_ == "int":
        return check_int(p, path, v, -(2 ** 63))
    if kind_ == "float":
        return check_number(p, path, v, 0.0)
    if kind_ == "str":
        if not isinstance(v, str):
            p.add(path, f"must be text, got {v!r} ({kind(v)}). Put it in quotes.")
            return False
        return True
    if isinstance(kind_, tuple) or isinstance(kind_, type) and issubclass(kind_, enum.Enum):
        allowed = list(kind_) if isinstance(kind_, tuple) else [str(e.value) for e in kind_]
        if v not in allowed:
            p.add(path, f"must be one of {one_of(allowed)}, got {v!r}.{did_you_mean(str(v), allowed)}")
            return False
    return True


@dataclass
class Context:
    """What the rules read and write while one config is validated."""

    raw: dict
    """The parsed file (a copy; rules never change it)."""
    problems: Problems
    data_dir: Path | None = None
    cfg_dir: Path | None = None
    check_machine: bool = False
    """Also check that this machine can run the config (the deepspeed package is installed)."""
    notes: list[str] = field(default_factory=list)
    data: DataConfig | None = None
    packing: bool = False
    typed_ok: dict[str, bool] = field(default_factory=dict)
    """training_args keys whose value has the field's type."""

    @property
    def ta(self) -> dict:
        """``training_args`` when it is a mapping, else ``{}``."""
        ta = self.raw.get("training_args")
        return ta if isinstance(ta, dict) else {}

    def ok(self, key: str) -> bool:
        """The training argument is present and of the right type."""
        return key in self.ta and self.ta[key] is not None and self.typed_ok.get(key, False)

    def arg(self, key: str) -> Any:
        """The training argument in force: the file's value, else transformers' default."""
        return self.ta[key] if key in self.ta else trainer_default(key)


Rule = Callable[[Context], None]
