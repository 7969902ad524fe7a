"""SwanLab, as GLM-4's current ``finetune.py`` uses it: the top-level ``swanlab:`` key of its configs.

The reference reads ``swanlab`` (default ``"cloud"``): any value but ``"disabled"`` sets
``SWANLAB_PROJ_NAME=GLM4-Finetune``, and ``"local"`` also sets ``SWANLAB_MODE=local`` (keep the
logs on this machine); the Trainer then reports to SwanLab when the ``swanlab`` package is
installed. Its own ``lora.yaml`` carries the key as a comment (``# swanlab: "local"``).

gluekit honours the key when it is written: at train time it sets the same two environment
variables and, when ``swanlab`` is installed, adds SwanLab's OWN Trainer callback
(``swanlab.integration.transformers.SwanLabCallback``). It does not use transformers' built-in
``report_to: swanlab``: under transformers 5.24 that integration asks ``swanlab.get_run() is None``,
which raises from swanlab 0.8 on ("No active Run"), so every run would crash at its first step.
Without the package nothing is reported and nothing fails (the note says so). Without the key
gluekit does nothing (the reference's default ``"cloud"`` reports only where swanlab is installed
and the Trainer's ``report_to`` includes it, which transformers 5 leaves ``none``).
"""
from __future__ import annotations

import importlib.util

SWANLAB_VALUES = ("disabled", "local", "cloud")
SWANLAB_PROJECT = "GLM4-Finetune"  # the reference's project name


def swanlab_installed() -> bool:
    return importlib.util.find_spec("swanlab") is not None


def swanlab_environment(value) -> dict[str, str]:
    """The environment variables the reference sets for ``swanlab: VALUE`` (``{}`` for disabled or no key)."""
    if value is None or value == "disabled":
        return {}
    env = {"SWANLAB_PROJ_NAME": SWANLAB_PROJECT}
    if value == "local":
        env["SWANLAB_MODE"] = "local"
    return env


def swanlab_notes(value, installed: bool | None = None, report_to=None) -> list[str]:
    """What ``swanlab: VALUE`` will do on this machine, one line each (never an error)."""
    notes = []
    installed = swanlab_installed() if installed is None else installed
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if "swanlab" in names:
        notes.append("training_args.report_to names swanlab: transformers' built-in SwanLab reporter crashes with "
                     "swanlab 0.8 or newer (\"No active Run\") at the first step. Remove it there and write the "
                     "top-level `swanlab: local` (or cloud): gluekit then adds SwanLab's own callback.")
    if value is None:
        return notes
    if value not in SWANLAB_VALUES:
        notes.append(f"swanlab: {value!r} is not one of {', '.join(SWANLAB_VALUES)}; like the reference, gluekit treats "
                     "any value but disabled as cloud (SWANLAB_PROJ_NAME=GLM4-Finetune).")
    if value == "disabled":
        notes.append("swanlab: disabled: nothing is reported to SwanLab.")
    elif not installed:
        notes.append(f"swanlab: {value}: the swanlab package is not installed, so nothing is reported "
                     "(as the reference; `pip install swanlab` to report).")
    else:
        where = ("logs stay on this machine (SWANLAB_MODE=local; `swanlab watch ./swanlog` shows them)"
                 if value == "local" else "cloud: log in first with `swanlab login`")
        notes.append(f"swanlab: {value}: training reports to SwanLab project {SWANLAB_PROJECT} through SwanLab's own "
                     f"callback; {where}.")
    return notes


def swanlab_callbacks(value) -> list:
    """SwanLab's own Trainer callback for ``swanlab: VALUE`` when the package is installed, else ``[]``."""
    if value is None or value == "disabled" or not swanlab_installed():
        return []
    from swanlab.integration.transformers import SwanLabCallback

    return [SwanLabCallback(project=SWANLAB_PROJECT)]


__all__ = ["SWANLAB_VALUES", "SWANLAB_PROJECT", "swanlab_installed", "swanlab_environment", "swanlab_notes",
           "swanlab_callbacks"]
