"""A run's output folder: which checkpoints are complete, where to resume, and the training log.

No model and no Trainer is needed here (nothing heavier than ``json`` is imported), so a
notebook or the command line can look at a folder, and a run can refuse a bad resume request,
before anything loads.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .errors import TrainingError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
"""The Trainer's checkpoint folders: ``checkpoint-<global step>``."""

RUN_OUTPUTS = ("adapter", "eval_predictions", "trainer_state.json", "run_summary.json",
               "all_results.json", "train_results.json", "eval_results.json", "test_results.json")
"""What a run leaves in output_dir besides checkpoints; a fresh run refuses to mix its results with these."""

# The resume words, for ``--resume`` and ``train(resume=...)``; anything else must be a step number.
RESUME_FRESH = ("no", "false", "none", "fresh", "")
RESUME_LATEST = ("yes", "true", "latest", "auto")


def resume_request(resume: Any) -> str | int | None:
    """What ``resume`` asks for: None (a fresh start), ``"latest"``, or a step number.

    None / False / "no" / "fresh" = fresh; True / "yes" / "latest" / "auto" = the newest complete
    checkpoint; an integer N or "N" = ``checkpoint-N``. Case and surrounding spaces do not matter.
    """
    word = str(resume).strip().lower() if resume is not None else "no"
    if word in RESUME_FRESH:
        return None
    if word in RESUME_LATEST:
        return "latest"
    if word.isdigit():
        return int(word)
    raise TrainingError(f"resume: {resume!r} is not understood. Use latest, a step number, or no.")


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why ``folder`` (a ``checkpoint-N``) cannot be resumed from, or None if it is complete.

    The Trainer writes trainer_state.json LAST (after weights, optimizer, scheduler and RNG state;
    transformers 5 ``Trainer._save_checkpoint``), so a run killed while saving leaves a folder
    without it, or with a cut-off copy. Either way the folder is skipped, never resumed from
    (resuming would silently start with a fresh optimizer). A state whose ``global_step`` differs
    from the folder's number was copied from elsewhere and is skipped too.
    """
    p = Path(folder)
    m = CHECKPOINT_RE.match(p.name)
    state = p / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the Trainer writes it last, so saving was interrupted)"
    try:
        st = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return "trainer_state.json is cut off or unreadable (saving was interrupted)"
    if not isinstance(st, dict):
        return "trainer_state.json does not hold a Trainer state"
    step = st.get("global_step")
    if m and step is not None and step != int(m.group(1)):
        return f"trainer_state.json is for step {step}, not {m.group(1)}"
    return None


def _checkpoint_folders(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-N`` folder, complete or not, by step."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    return sorted(found)


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (see :func:`checkpoint_problem` for what "complete" means)."""
    return [p for _, p in _checkpoint_folders(output_dir) if checkpoint_problem(p) is None]


def incomplete_checkpoints(output_dir: str | Path) -> list[tuple[Path, str]]:
    """``(folder, reason)`` for every ``checkpoint-N`` folder that :func:`list_checkpoints` skips."""
    found = [(p, checkpoint_problem(p)) for _, p in _checkpoint_folders(output_dir)]
    return [(p, why) for p, why in found if why]


def run_outputs(output_dir: str | Path) -> list[Path]:
    """What earlier runs left in ``output_dir``: checkpoint folders (complete or not), then RUN_OUTPUTS by name."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    rest = sorted((p for p in out.iterdir() if p.name in RUN_OUTPUTS), key=lambda p: p.name)
    return [p for _, p in _checkpoint_folders(out)] + rest


def resolve_resume(output_dir: str | Path, resume: Any, overwrite: bool = False) -> Path | None:
    """Turn a resume request (see :func:`resume_request`) into a checkpoint folder, or None for a fresh start.

    "latest" is the newest complete checkpoint (a fresh start if there is none; an absent
    output_dir is fine); a step N must name a complete ``checkpoint-N``. A fresh start into a folder
    that holds an earlier run's results is refused unless ``overwrite``, which deletes those results
    (checkpoints, adapter, eval predictions, states) and nothing else. GLM-4's script silently
    skipped training for "no"; gluekit trains.
    """
    out = Path(output_dir)
    request = resume_request(resume)
    ckpts = list_checkpoints(out)
    if request is None:
        leftovers = run_outputs(out)
        if ckpts and not overwrite:
            raise TrainingError(
                f"`training_args.output_dir`: {out} already holds {', '.join(p.name for p in ckpts)}. "
                "Resume with --resume latest or a step (in Python: resume=\"latest\"), pick another output_dir, or "
                "start over with --overwrite (overwrite=True).")
        if leftovers and not overwrite:
            raise TrainingError(
                f"`training_args.output_dir`: {out} already holds an earlier run's results "
                f"({', '.join(p.name for p in leftovers)}). Pick another output_dir, or pass --overwrite (in Python: overwrite=True) to replace them.")
        if leftovers and overwrite and int(os.environ.get("RANK", "0")) == 0:  # one process deletes, not each rank
            for p in leftovers:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        return None
    if request == "latest":
        return ckpts[-1] if ckpts else None
    target = out / f"checkpoint-{request}"
    if target not in ckpts:
        have = ", ".join(p.name for p in ckpts) or "none"
        if target.is_dir():
            raise TrainingError(f"resume: {target} is incomplete: {checkpoint_problem(target)} (complete checkpoints: "
                                f"{have}). Resume from one of those, or use --resume latest (resume='latest').")
        raise TrainingError(f"resume: {target} does not exist or is incomplete (complete checkpoints: {have}).")
    return target


def training_log(output_dir: str | Path) -> list[dict]:
    """``log_history`` of a finished run (its trainer_state.json), else of its newest complete checkpoint."""
    out = Path(output_dir)
    candidates = [out / "trainer_state.json"] + [p / "trainer_state.json" for p in reversed(list_checkpoints(out))]
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))["log_history"]
    raise FileNotFoundError(f"no trainer_state.json in {out} or its checkpoints.")


__all__ = ["CHECKPOINT_RE", "RUN_OUTPUTS", "RESUME_FRESH", "RESUME_LATEST", "resume_request", "checkpoint_problem",
           "list_checkpoints", "incomplete_checkpoints", "run_outputs", "resolve_resume", "training_log"]
