"""A config file being edited: field edits on top of the file's text, checked as ``gluekit check`` checks
them, and saved with the file's layout and comments.

An edit is what ``-o FIELD=VALUE`` is on the command line: the value is YAML 1.2 text (``5e-4`` is the
number 0.0005), applied as an override. So :meth:`ConfigDraft.check` gives the problems
``gluekit check FILE -o FIELD=VALUE ...`` prints, with the file's line numbers, and the file
:meth:`ConfigDraft.save` writes gives the same config when it is read again: each edited value is
written on its key's own line (the comment after it stays), a new key goes at the end of its section.
The control panel (:mod:`gluekit.viz.panel`) edits a config through this class.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .files import find_config
from .loader import _lines, _plain, _read_text, apply_overrides, load_config_text, parse_scalar, read_tree
from .schema import FinetuneConfig


class ConfigDraft:
    """``path``'s text (a shipped name such as ``tiny.yaml`` works as in :func:`load_config`) plus edits."""

    def __init__(self, path: str | Path):
        self.path, self.shipped_note = find_config(path)
        if not self.path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found. Check the path (it is relative to the current folder).", None)
        self.source = self.path.name
        self.text = _read_text(self.path, self.source)
        self.edits: dict[str, str] = {}
        """Field path -> value as typed (YAML text), in the order they were made."""
        try:
            self._raw = _plain(read_tree(self.text, self.source))
        except ConfigError:  # a syntax error: check() reports it; no field has a value
            self._raw = None

    # ---------------------------------------------------------------- fields

    def file_value(self, field: str) -> tuple[bool, Any]:
        """(present, value) of ``field`` in the file itself (no edits)."""
        node = self._raw
        for part in field.split("."):
            if not isinstance(node, dict) or part not in node:
                return False, None
            node = node[part]
        return True, node

    def value_text(self, field: str) -> str:
        """What a field shows: the edit as typed, else the file's value as YAML text ('' when absent)."""
        if field in self.edits:
            return self.edits[field]
        present, value = self.file_value(field)
        return scalar_text(value) if present else ""

    def set(self, field: str, text: str) -> None:
        """Edit ``field`` to the YAML text ``text``; the file's own value (or '' for an absent key) undoes the edit."""
        present, value = self.file_value(field)
        if (present and text.strip() == scalar_text(value)) or (not present and not text.strip()):
            self.edits.pop(field, None)
        else:
            self.edits[field] = text.strip()

    def overrides(self) -> list[str]:
        """The edits as ``gluekit check -o`` arguments."""
        return [f"{k}={v}" for k, v in self.edits.items()]

    # ---------------------------------------------------------------- checking

    def load(self, data_dir: str | Path | None = None, check_machine: bool = True) -> FinetuneConfig:
        """The edited config, validated as ``gluekit check`` does (raises :class:`ConfigError` listing every problem)."""
        cfg = load_config_text(self.text, self.source, self.overrides(), data_dir, cfg_dir=self.path.parent,
                               check_machine=check_machine)
        cfg.path = self.path
        if self.shipped_note:
            cfg.notes.insert(0, self.shipped_note)
        return cfg

    def check(self, data_dir: str | Path | None = None, check_machine: bool = True) -> tuple[FinetuneConfig | None, list[str]]:
        """(config, []) when the edited config is valid, else (None, the problems ``gluekit check`` lists)."""
        try:
            return self.load(data_dir, check_machine), []
        except ConfigError as e:
            return None, list(e.problems)

    # ---------------------------------------------------------------- saving

    def edited_text(self) -> str:
        """The file's text with every edit written in (layout and comments kept); reads back as the edited config."""
        text = self.text
        for field, typed in self.edits.items():
            text = _set_in_text(text, field, typed, self.source)
        want = apply_overrides(_plain(read_tree(self.text, self.source)), self.edits and
                               {k: parse_scalar(v) for k, v in self.edits.items()})
        if _plain(read_tree(text, self.source)) != want:  # an edit the line-wise writer could not place
            text = _dump(want)
        return text

    def save(self, path: str | Path) -> Path:
        """Write :meth:`edited_text` to ``path`` (folders created); a file saved here then opens as the draft's source."""
        path = Path(path)
        text = self.edited_text()  # raises ConfigError on a YAML syntax error: nothing is written
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path


def scalar_text(value: Any) -> str:
    """A value as one line of YAML 1.2 (flow style): ``3.0e-3`` -> ``0.003``, ``False`` -> ``false``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        try:
            if parse_scalar(value) == value and "#" not in value and not value.startswith(("'", '"')):
                return value
        except Exception:  # noqa: BLE001 (not valid plain YAML: quoted below)
            pass
    return json.dumps(value, ensure_ascii=False)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], start: int) -> int:
    """Index after the block of the key on ``lines[start]`` (its more-indented lines, blank lines inside it)."""
    base, end = _indent(lines[start]), start + 1
    for i in range(start + 1, len(lines)):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            continue
        if _indent(lines[i]) <= base:
            break
        end = i + 1
    return end


def _set_in_text(text: str, field: str, typed: str, source: str) -> str:
    """``text`` with ``field`` set to the YAML text ``typed``: on its key's line, or added to its section."""
    value = parse_scalar(typed)
    flow = typed if "\n" not in typed else json.dumps(value, ensure_ascii=False)
    tree = read_tree(text, source)
    pos = _lines(tree)
    lines = text.splitlines(keepends=True)
    parts = field.split(".")
    if field in pos:
        i = pos[field] - 1
        m = re.match(r"^(\s*(?:\"[^\"]*\"|'[^']*'|[^#:]+):)[ \t]*(.*)$", lines[i].rstrip("\n"))
        if m is None:
            return text
        rest = m.group(2)
        quoted = rest[:1] in ("'", '"') and rest.find(rest[0], 1) > 0
        tail = rest[rest.find(rest[0], 1) + 1:] if quoted else rest
        comment = re.search(r"(\s+#.*|^#.*)$", tail)
        after = comment.group(1) if comment else ""
        # `key:` (or `key:  # comment`) opens a block on the lines below: the block goes
        end = _block_end(lines, i) if not rest.strip() or rest.strip().startswith("#") else i + 1
        head = f"{m.group(1)} {flow}"
        if after:  # an aligned comment stays in its column when the new value leaves room
            column = lines[i].rstrip("\n").rindex(after.lstrip())
            gap = column - len(head) if len(after) - len(after.lstrip()) > 2 else 2
            after = " " * max(2, gap) + after.lstrip()
        nl = "\n" if lines[i].endswith("\n") else ""
        new = f"{head}{after}{nl}"
        return "".join(lines[:i] + [new] + lines[end:])
    # a new key: under its deepest existing section, or a new section at the end
    depth = next((d for d in range(len(parts) - 1, 0, -1) if ".".join(parts[:d]) in pos), 0)
    if depth:
        i = pos[".".join(parts[:depth])] - 1
        end = _block_end(lines, i)
        child = next((_indent(x) for x in lines[i + 1:end] if x.strip() and not x.lstrip().startswith("#")),
                     _indent(lines[i]) + 2)
        while end > i + 1 and not lines[end - 1].strip():
            end -= 1  # before the blank lines that close the section
    else:
        end, child = len(lines), 0
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
    step = 2
    new = []
    for k, part in enumerate(parts[depth:]):
        last = depth + k == len(parts) - 1
        new.append(" " * (child + k * step) + f"{part}:" + (f" {flow}\n" if last else "\n"))
    return "".join(lines[:end] + new + lines[end:])


def _dump(raw: dict) -> str:
    from ruamel.yaml import YAML

    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(raw, out)
    return out.getvalue()


__all__ = ["ConfigDraft", "scalar_text"]
