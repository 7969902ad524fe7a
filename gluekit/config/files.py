"""Where the files a config names are: the configs shipped with gluekit, the config itself, a DeepSpeed JSON.

The shipped configs (``lora.yaml``, ``tiny.yaml``, ``sft.yaml``, ``ptuning_v2.yaml`` and the two
DeepSpeed files) are package data in ``gluekit/configs/``; the repository's top-level ``configs``
is a symlink to that folder, so there is one copy. A bare name such as ``tiny.yaml`` that is not a
file in the current folder means the shipped copy (:func:`find_config`); a file in the current
folder always wins.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "configs"
# One line each for the shipped files that cannot open with a comment: lora.yaml is GLM-4's file
# byte for byte, and JSON has no comments. The others describe themselves in their first comment.
DESCRIPTIONS = {
    "lora.yaml": "GLM-4's LoRA recipe for GLM-4-9B-chat, byte for byte as GLM-4's repository ships it.",
    "ds_zero_2.json": "DeepSpeed ZeRO-2 (shards gradients and optimizer state); \"auto\" values come from training_args.",
    "ds_zero_3.json": "DeepSpeed ZeRO-3 (shards weights too), named by sft.yaml; \"auto\" values come from training_args.",
}


@dataclass(frozen=True)
class ShippedConfig:
    """One file of ``gluekit/configs/``."""

    name: str
    description: str
    """The first sentence of the file's opening comment, or its line in ``DESCRIPTIONS``."""
    path: Path


def _description(path: Path) -> str:
    if path.name in DESCRIPTIONS:
        return DESCRIPTIONS[path.name]
    comment = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    text = " ".join(comment)
    return text.split(". ", 1)[0].rstrip(".") + "." if text else ""


def shipped_configs() -> list[ShippedConfig]:
    """Every config file shipped with gluekit, sorted by name."""
    return [ShippedConfig(p.name, _description(p), p) for p in sorted(SHIPPED_DIR.iterdir())
            if p.is_file() and p.suffix in (".yaml", ".json")]


def shipped_config(name: str) -> Path:
    """The path of a shipped config file, e.g. ``shipped_config("lora.yaml")``.

    Raises :class:`ConfigError` naming the shipped files when there is none of that name.
    """
    path = SHIPPED_DIR / name
    if Path(name).name != name or not path.is_file():
        names = ", ".join(c.name for c in shipped_configs())
        raise ConfigError(f"no config {name!r} is shipped with gluekit. Shipped: {names} (`gluekit configs`).")
    return path


def find_config(path: str | Path) -> tuple[Path, str | None]:
    """The file ``path`` means, and a note when that is a shipped copy.

    A path that exists (relative to the current folder, or absolute) is itself. A bare name
    (no folder part) that is not there but is shipped means the shipped copy.
    """
    path = Path(path)
    if path.exists() or len(path.parts) != 1 or not (SHIPPED_DIR / path.name).is_file():
        return path, None
    shipped = SHIPPED_DIR / path.name
    return shipped, f"config {path.name}: the copy shipped with gluekit ({shipped})."


def deepspeed_candidates(value: str, config_dir: Path | None) -> list[Path]:
    """Where ``training_args.deepspeed: VALUE`` may be, in lookup order, as paths from the current folder.

    As GLM-4's ``finetune.py`` (which hands the path to transformers), a relative path is looked up
    in the current folder first; gluekit then also looks beside the config file, so a config and
    its DeepSpeed file can travel together (``sft.yaml`` names ``ds_zero_3.json``). The config's
    folder is written as the config's path was given (``../configs``), and left out when it is the
    current folder.
    """
    target = Path(value)
    if target.is_absolute() or config_dir is None:
        return [target]
    beside = Path(config_dir) / target
    return [target] if os.path.abspath(beside) == os.path.abspath(target) else [target, beside]


def find_deepspeed(value: str, config_dir: Path | None) -> Path | None:
    """The first existing file of :func:`deepspeed_candidates`, or None."""
    return next((p for p in deepspeed_candidates(value, config_dir) if p.is_file()), None)


def deepspeed_not_found(value: str, config_dir: Path | None) -> str:
    """The problem text for a ``training_args.deepspeed`` file that is in none of the places looked at."""
    tried = " and ".join(str(p) for p in deepspeed_candidates(value, config_dir))
    where = "in the current folder, then beside the config file" if config_dir is not None else "in the current folder"
    return (f"file {value!r} not found (looked at {tried}). A relative path is looked up {where}; "
            "fix the path or delete the key.")


# The problem when this machine cannot run a config's DeepSpeed (``gluekit check``, building the arguments).
DEEPSPEED_MISSING = "is set but the deepspeed package is not installed. `pip install deepspeed` on a CUDA machine, or remove the key (`-o training_args.deepspeed=null` for one run)."


def deepspeed_installed() -> bool:
    """True when the ``deepspeed`` package can be imported here (it needs a CUDA machine to run)."""
    return importlib.util.find_spec("deepspeed") is not None
