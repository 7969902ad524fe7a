"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

A run can be killed at any moment (out of memory, a preempted machine, Ctrl-C). Whatever gluekit
writes for later reading (eval predictions, ``run_summary.json``) is written to a temporary
file beside the target and renamed over it: a rename within one folder is atomic on POSIX and
Windows, so a killed process leaves at worst a stray ``.tmp`` file, never a cut-off result. There
is no fsync: this protects against a killed process, not against losing power.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_write(path: str | Path, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """Open ``path`` for writing text; the file appears, whole, when the block ends without error.

    The parent folder is created if missing. If the block raises, the target is left as it was
    and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding=encoding, newline="\n") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    with atomic_write(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented UTF-8 JSON (Chinese stays readable, not ``\\uXXXX``), written atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
    return Path(path)


__all__ = ["atomic_write", "write_text", "write_json"]
