"""A run's output folder: which checkpoints are complete, where to resume, and the training log.

No model and no Trainer is needed here (the standard library only: ``json`` and ``zipfile``), so
a notebook or the command line can look at a folder, and a run can refuse a bad resume request,
before anything loads. Only the deep check of :func:`checkpoint_problem` imports torch.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TrainingError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
"""The Trainer's checkpoint folders: ``checkpoint-<global step>``."""

RUN_OUTPUTS = ("adapter", "adapter.partial", "eval_predictions", "trainer_state.json", "run_summary.json",
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


WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json",
                "adapter_model.bin", "pytorch_model.bin")
"""What a checkpoint's weights are saved as (PEFT adapter, full model, sharded full model, legacy), in that order."""


def safetensors_problem(path: str | Path) -> str | None:
    """Why a ``.safetensors`` file is not whole, from its header alone (no tensor is read).

    The format is an 8-byte header length, a JSON header listing every tensor's byte range, then
    the tensors: a whole file is exactly ``8 + header + the last tensor's end`` bytes long. A copy
    cut short (or a save killed part-way) is shorter, which is what safetensors itself reports as
    "invalid header length" or a failed load.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else None
            if n is None or n > size - 8:
                return f"{p.name} is cut off ({size:,} bytes, shorter than the header it announces)"
            header = json.loads(f.read(n))
    except OSError as e:
        return f"{p.name} cannot be read ({e.strerror or e})"
    except (ValueError, UnicodeDecodeError):
        return f"{p.name} has no readable safetensors header (damaged, or not a safetensors file)"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return f"{p.name} has no readable safetensors header (damaged, or not a safetensors file)"
    if 8 + n + end != size:
        return f"{p.name} is cut off: its header lists {end:,} bytes of tensors, the file holds {size - 8 - n:,}"
    return None


def torch_file_problem(path: str | Path, deep: bool = False) -> str | None:
    """Why a file written by ``torch.save`` (optimizer.pt, scheduler.pt, rng_state.pth) is not whole.

    Cheap: ``torch.save`` writes a zip archive whose directory is at the END of the file, so a copy
    cut short has none, and every entry must lie inside the file (the zip directory is read, no
    tensor). ``deep``: also ``torch.load(weights_only=True, mmap=True)`` with the numpy types the
    Trainer itself allows when it resumes (``transformers.trainer_pt_utils.safe_globals``: the RNG
    state holds numpy's), which unpickles the structure under the safe loader and maps the tensors
    without reading them.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with zipfile.ZipFile(p) as z:
            entries = z.infolist()
    except OSError as e:
        return f"{p.name} cannot be read ({e.strerror or e})"
    except (zipfile.BadZipFile, ValueError):
        return f"{p.name} is cut off or damaged ({size:,} bytes, no zip directory at its end, which torch.save writes last)"
    if not any(e.filename.endswith("/data.pkl") or e.filename == "data.pkl" for e in entries):
        return f"{p.name} is not a torch.save file (no data.pkl inside)"
    if any(e.header_offset + e.compress_size > size for e in entries):
        return f"{p.name} is cut off ({size:,} bytes; its zip directory lists data beyond the end)"
    if deep:
        import torch
        from transformers.trainer_pt_utils import safe_globals

        try:
            with safe_globals():
                torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # any failure to load is the answer
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            return f"{p.name} does not load with torch.load(weights_only=True): {first}"
    return None


def _weights_problem(p: Path, deepspeed: bool) -> str | None:
    for name in WEIGHT_FILES:
        f = p / name
        if not f.is_file():
            continue
        if name.endswith(".safetensors"):
            return safetensors_problem(f)
        if name.endswith(".bin"):
            return torch_file_problem(f)
        try:  # a sharded model: the index, then every shard it names
            shards = sorted(set(json.loads(f.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"{name} is cut off or unreadable"
        for shard in shards:
            if not (p / shard).is_file():
                return f"{shard} (listed in {name}) is missing"
            if why := safetensors_problem(p / shard):
                return why
        return None
    if deepspeed:
        return None  # ZeRO-3 may keep the weights only in DeepSpeed's own folder
    return "no weights file (adapter_model.safetensors or model.safetensors)"


def checkpoint_problem(folder: str | Path, deep: bool = False) -> str | None:
    """Why ``folder`` (a ``checkpoint-N``) cannot be resumed from, or None if it is complete.

    In this order: trainer_state.json, the weights, the optimizer, the scheduler, the RNG state.
    The Trainer writes trainer_state.json LAST (after weights, optimizer, scheduler and RNG state;
    transformers 5 ``Trainer._save_checkpoint``), so a run killed while saving leaves a folder
    without it, or with a cut-off copy. A state whose ``global_step`` differs from the folder's
    number was copied from elsewhere. Then every file a resume loads must be whole: the
    safetensors weights by their header (:func:`safetensors_problem`), optimizer.pt, scheduler.pt
    and rng_state*.pth by their zip directory (:func:`torch_file_problem`); ``deep`` also loads the
    last three with ``torch.load(weights_only=True)`` (tensors mapped, not read). A checkpoint
    without optimizer state (``save_only_model: true``) is incomplete too: resuming from it would
    silently start with a fresh optimizer. Under DeepSpeed (a ``latest`` file) the optimizer lives
    in the folder ``latest`` names, which must hold files.

    Cost: a few small reads per checkpoint (the state, a header, three zip directories), never
    the tensors, so :func:`list_checkpoints` stays cheap on a 50 GB checkpoint.
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
    deepspeed = (p / "latest").is_file()
    if why := _weights_problem(p, deepspeed):
        return why
    if deepspeed:
        tag = (p / "latest").read_text(encoding="utf-8", errors="replace").strip()
        if not tag or not (p / tag).is_dir() or not any((p / tag).iterdir()):
            return f"DeepSpeed's folder {tag or '(unnamed)'}, named in `latest`, is missing or empty"
    elif not (p / "optimizer.pt").is_file():
        return "no optimizer.pt (saved with save_only_model: true, or deleted): resuming would start a fresh optimizer"
    needed = [] if deepspeed else ["optimizer.pt", "scheduler.pt"]
    for name in needed:
        if not (p / name).is_file():
            return f"no {name} (deleted, or not saved)"
    rng = sorted(p.glob("rng_state*.pth"))
    if not rng:
        return "no rng_state.pth (deleted, or not saved): the resumed run would draw different random numbers"
    for f in [p / n for n in needed] + rng + ([p / "scaler.pt"] if (p / "scaler.pt").is_file() else []):
        if why := torch_file_problem(f, deep=deep):
            return why
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


@dataclass
class ResumePoint:
    """Where a run starts: ``checkpoint`` (None: from scratch) and the checkpoints passed over on the way."""

    checkpoint: Path | None
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """``(folder, reason)`` of every damaged or incomplete checkpoint newer than ``checkpoint``, newest first."""

    def lines(self) -> list[str]:
        """One line per skipped checkpoint (which file, why), as ``gluekit train`` and ``gluekit check`` print them."""
        return [f"skipping {folder.name}: {why}" for folder, why in self.skipped]


def resume_point(output_dir: str | Path, resume: Any, overwrite: bool = False, deep: bool = True) -> ResumePoint:
    """Turn a resume request (see :func:`resume_request`) into a :class:`ResumePoint`.

    "latest" is the newest checkpoint that passes :func:`checkpoint_problem` (``deep``: torch files
    loaded too, for the candidates only, newest first, until one passes); newer ones are skipped
    with their reason. No checkpoint folder at all is a fresh start (an absent output_dir is
    fine); folders that are ALL damaged are an error, never a silent fresh start over them. A step
    N must name a complete ``checkpoint-N``. A fresh start into a folder that holds an earlier
    run's results is refused unless ``overwrite``, which deletes those results (checkpoints,
    adapter, eval predictions, states) and nothing else. GLM-4's script silently skipped training
    for "no"; gluekit trains.
    """
    out = Path(output_dir)
    request = resume_request(resume)
    if request is None:
        ckpts = list_checkpoints(out)
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
        return ResumePoint(None)
    folders = [p for _, p in _checkpoint_folders(out)]
    if request == "latest":
        skipped = []
        for folder in reversed(folders):
            why = checkpoint_problem(folder, deep=deep)
            if why is None:
                return ResumePoint(folder, skipped)
            skipped.append((folder, why))
        if skipped:
            found = "; ".join(f"{folder.name}: {why}" for folder, why in skipped)
            raise TrainingError(
                f"resume: no complete checkpoint left in {out} ({found}). Start over with --overwrite "
                "(overwrite=True), which deletes them, or put back a whole copy of one.")
        return ResumePoint(None)
    target = out / f"checkpoint-{request}"
    why = checkpoint_problem(target, deep=deep) if target in folders else "absent"
    if why is None:
        return ResumePoint(target)
    have = ", ".join(p.name for p in list_checkpoints(out)) or "none"
    if target.is_dir():
        raise TrainingError(f"resume: {target} is incomplete: {why} (complete checkpoints: "
                            f"{have}). Resume from one of those, or use --resume latest (resume='latest').")
    raise TrainingError(f"resume: {target} does not exist or is incomplete (complete checkpoints: {have}).")


def resolve_resume(output_dir: str | Path, resume: Any, overwrite: bool = False) -> Path | None:
    """The checkpoint folder :func:`resume_point` picks (cheap checks only), or None for a fresh start."""
    return resume_point(output_dir, resume, overwrite, deep=False).checkpoint


def training_log(output_dir: str | Path) -> list[dict]:
    """``log_history`` of a finished run (its trainer_state.json), else of its newest complete checkpoint."""
    out = Path(output_dir)
    candidates = [out / "trainer_state.json"] + [p / "trainer_state.json" for p in reversed(list_checkpoints(out))]
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))["log_history"]
    raise FileNotFoundError(f"no trainer_state.json in {out} or its checkpoints.")


__all__ = ["CHECKPOINT_RE", "RUN_OUTPUTS", "RESUME_FRESH", "RESUME_LATEST", "WEIGHT_FILES", "resume_request",
           "safetensors_problem", "torch_file_problem", "checkpoint_problem", "list_checkpoints", "incomplete_checkpoints",
           "run_outputs", "ResumePoint", "resume_point", "resolve_resume", "training_log"]
