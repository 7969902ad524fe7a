"""Disk: what a run writes (bytes per checkpoint and for the final adapter), against the free space of
its output folder, and a full disk during a save turned into one clear line.

Each part of a checkpoint is computed, not looked up: the weights and the optimizer's moments from
the trained parameters (AdamW keeps two moments the size of each trained tensor, in its dtype);
the scheduler, the RNG state and ``training_args.bin`` by serialising the very objects the
Trainer saves into memory with ``torch.save``; ``trainer_state.json`` from a TrainerState holding
the run's log records; the tokenizer from its saved files. Not counted: safetensors headers and
torch's per-tensor zip entries (about 1% of a tiny checkpoint, nothing on a real one), PEFT's
README.md (5 kB), eval predictions and TensorBoard files.

Full SFT of GLM-4-9B in bf16 (9.4 billion parameters): weights 2 bytes + AdamW moments 2 x 2 bytes
per parameter = 56 GB per checkpoint; lora.yaml's LoRA on it (5.4 million fp32 parameters):
4 + 8 bytes per parameter = 65 MB plus the tokenizer. ``gluekit plan`` and ``gluekit check`` print
the estimate (:class:`DiskPlan`); ``train()`` warns before training when it will not fit.
"""
from __future__ import annotations

import errno
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DiskFullError

MiB = 2 ** 20
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                   "chat_template.jinja", "vocab.json", "merges.txt", "added_tokens.json")
"""Files a tokenizer's ``save_pretrained`` writes (those of them present in a model folder are counted)."""


def human(n: float) -> str:
    """Bytes as kB / MB / GB (powers of 1000, as ``df -H`` and disk makers count)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}" if n < 1000 * size else f"{n / size:,.0f} {unit}"
    return f"{int(n)} bytes"


def existing_parent(path: str | Path) -> Path:
    """``path`` or its nearest existing ancestor (the folder whose disk a new output_dir will be on)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | Path) -> int:
    """Bytes free for this user on the disk that holds (or will hold) ``path``."""
    return shutil.disk_usage(existing_parent(path)).free


# ---------------------------------------------------------------- a full disk during a save

DISK_FULL_TEXT = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")
TORCH_WRITER_TEXT = ("inline_container", "PytorchStreamWriter", "file write failed", "iostream error")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_disk_full(exc: BaseException, folder: str | Path, needed: int = 0) -> bool:
    """Whether ``exc``, raised while writing into ``folder``, means the disk (or quota) is full.

    Python's own writes raise ``OSError(ENOSPC)``; safetensors says "No space left on device (os
    error 28)" in a ``SafetensorError``; torch.save's C++ writer raises a bare ``RuntimeError``
    ("unexpected pos ...", "file write failed") with no error number, so that one counts as a full
    disk only when the disk has less than ``needed`` bytes free.
    """
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(e) for t in DISK_FULL_TEXT):
            return True
    if any(t in str(e) for e in _chain(exc) for t in TORCH_WRITER_TEXT):
        try:
            return free_bytes(folder) < max(needed, 1)
        except OSError:
            return False
    return False


def disk_full_error(what: str, folder: str | Path, needed: int, output_dir: str | Path, removed: str | None = None,
                    final_step: int | None = None) -> DiskFullError:
    """The one-line error: what was being saved into which folder, the bytes needed and free, the
    partial folder removed (``removed``: its name) and where the run can go on from. ``final_step``:
    the run's last step, when training itself had finished."""
    from .checkpoints import list_checkpoints

    folder = Path(folder)
    try:
        free = human(free_bytes(folder))
    except OSError:
        free = "unknown"
    ckpts = list_checkpoints(output_dir)
    gone = f" The partial {removed} was removed." if removed else ""
    if ckpts:
        done = " (training had finished: resuming from it only writes what is missing)" \
            if final_step is not None and ckpts[-1].name == f"checkpoint-{final_step}" else ""
        go_on = (f" The last complete checkpoint is {ckpts[-1].name}{done}: free space (or lower save_total_limit, or "
                 "pick another output_dir), then `gluekit train ... --resume latest` (resume=\"latest\") continues from it.")
    else:
        go_on = " No complete checkpoint was saved before it: free space (or pick another output_dir) and start again."
    return DiskFullError(f"disk full while saving {what} in {folder}: it needs about {human(needed)}, {free} free "
                         f"there.{gone}{go_on}")


def checkpoint_bytes_estimate(model, args) -> int:
    """Weights + optimizer state of one checkpoint of ``model`` (PEFT: the adapter only), from its parameters."""
    trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    weights = trained if hasattr(model, "peft_config") else sum(p.numel() * p.element_size() for p in model.parameters())
    return int(weights + (0 if args.save_only_model else moments_per_byte(args.optim) * trained))


# ---------------------------------------------------------------- the estimate

def _saved_size(obj) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.tell()


def rng_state_bytes() -> int:
    """Size of one ``rng_state.pth`` as the Trainer writes it (Python, numpy and torch CPU generators)."""
    import random

    import numpy as np
    import torch

    return _saved_size({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()})


def scheduler_bytes(args, max_steps: int) -> int:
    """Size of ``scheduler.pt``: the state of the scheduler ``Trainer.create_scheduler`` builds for ``args``."""
    import types

    import torch
    from transformers import Trainer

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    sched = Trainer.create_scheduler(types.SimpleNamespace(args=args, lr_scheduler=None), max_steps, opt)
    return _saved_size(sched.state_dict())


def trainer_state_bytes(max_steps: int, log_records: int, eval_records: int = 0) -> int:
    """Size of ``trainer_state.json`` holding ``log_records`` training and ``eval_records`` eval records."""
    from transformers import TrainerState

    train = {"epoch": 1.2345678901234567, "grad_norm": 1.2345678901234567, "learning_rate": 0.00012345678901234567,
             "loss": 1.2345, "step": max_steps}
    ev = {"epoch": 1.2345678901234567, "eval_bleu-4": 12.3456, "eval_rouge-1": 12.3456, "eval_rouge-2": 12.3456,
          "eval_rouge-l": 12.3456, "eval_samples": 100, "step": max_steps}
    import tempfile

    state = TrainerState(global_step=max_steps, max_steps=max_steps, log_history=[train] * log_records + [ev] * eval_records)
    with tempfile.TemporaryDirectory() as d:  # written by the Trainer's own method, then measured
        state.save_to_json(str(Path(d) / "trainer_state.json"))
        return (Path(d) / "trainer_state.json").stat().st_size


def moments_per_byte(optim: str) -> float:
    """Optimizer state per byte of trained parameter: AdamW keeps two moments in the parameter's dtype."""
    name = str(getattr(optim, "value", optim)).lower()
    if "8bit" in name:
        return 2 / 4  # two 1-byte moments per fp32 parameter
    if name.startswith(("adafactor", "sgd")):
        return 0.0  # factored second moments / no momentum by default: negligible
    return 2.0


@dataclass
class DiskPlan:
    """Bytes a run writes into ``output_dir``, against the free space there (``free``: None = not looked up)."""

    output_dir: Path
    checkpoint: dict[str, int]
    """One checkpoint by part: weights, optimizer, scheduler, rng, tokenizer, other (state, args, config)."""
    final: dict[str, int]
    """The final adapter (or model) folder by part: weights, tokenizer, other."""
    saves: int
    """Checkpoints the run writes."""
    limit: int | None
    """``save_total_limit``: how many are kept (None: all)."""
    free: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def checkpoint_bytes(self) -> int:
        return sum(self.checkpoint.values())

    @property
    def final_bytes(self) -> int:
        return sum(self.final.values())

    @property
    def at_once(self) -> int:
        """Most checkpoints on disk at one time: the Trainer writes a new one before deleting the oldest."""
        return min(self.saves, self.limit + 1) if self.limit else self.saves

    @property
    def needed(self) -> int:
        """Peak bytes: during the last rotation, or the kept checkpoints plus the final adapter."""
        kept = min(self.saves, self.limit) if self.limit else self.saves
        return max(self.at_once * self.checkpoint_bytes, kept * self.checkpoint_bytes + self.final_bytes)

    @property
    def fits(self) -> bool | None:
        return None if self.free is None else self.needed <= self.free

    def problem(self) -> str | None:
        """The message when the run will not fit, else None."""
        if self.fits is not False:
            return None
        return (f"`training_args.output_dir`: {self.output_dir} needs about {human(self.needed)} "
                f"({self.at_once} checkpoint(s) of {human(self.checkpoint_bytes)} at once, save_total_limit "
                f"{self.limit}, and the final adapter, {human(self.final_bytes)}), got {human(self.free)} free on its "
                "disk. Free space, set save_total_limit (e.g. 2), or pick another output_dir.")

    def summary(self) -> str:
        c = self.checkpoint
        parts = ", ".join(f"{k} {human(v)}" for k, v in c.items() if v)
        where = f"{human(self.free)} free on the disk of {self.output_dir}" if self.free is not None else "free space not looked up"
        verdict = {True: "fits", False: "will NOT fit", None: "not checked"}[self.fits]
        lines = [f"disk: each checkpoint {human(self.checkpoint_bytes)} ({parts}); final adapter {human(self.final_bytes)}",
                 f"  {self.saves} checkpoint(s) saved, at most {self.at_once} on disk at once (save_total_limit "
                 f"{self.limit}): needs about {human(self.needed)}, {where}: {verdict}"]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])

    def to_dict(self) -> dict:
        return {"output_dir": str(self.output_dir), "checkpoint": self.checkpoint, "checkpoint_bytes": self.checkpoint_bytes,
                "final": self.final, "final_bytes": self.final_bytes, "saves": self.saves, "save_total_limit": self.limit,
                "at_once": self.at_once, "needed": self.needed, "free": self.free, "fits": self.fits, "notes": self.notes}


def tokenizer_bytes_of(tokenizer) -> int:
    """Bytes ``tokenizer.save_pretrained`` writes (saved into a temporary folder and counted).

    The save's own info lines ("tokenizer config file saved in /tmp/...") are kept out of the run's
    log: this is a measurement, not a file of the run."""
    import logging
    import tempfile

    from .quiet import transformers_logs

    with tempfile.TemporaryDirectory() as d, transformers_logs(logging.WARNING):
        tokenizer.save_pretrained(d)
        return sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file())


def tokenizer_bytes_in(folder: str | Path) -> int | None:
    """Bytes of the tokenizer files in a model folder (None when it has none)."""
    files = [Path(folder) / n for n in TOKENIZER_FILES if (Path(folder) / n).is_file()]
    return sum(f.stat().st_size for f in files) if files else None


def plan_disk(cfg, plan, *, weights: int, trained: int, trained_params: int, tokenizer: int | None,
              config_bytes: int = 0, zero_stage: int = 0, devices: int = 1, look: bool = True, args=None) -> DiskPlan:
    """The :class:`DiskPlan` of a run of ``cfg`` with ``plan`` (a :class:`gluekit.plan.Plan`).

    ``weights``: bytes of what ``save_model`` writes (the adapter, or every weight in full SFT);
    ``trained``: bytes of the trained parameters (the optimizer's moments take
    :func:`moments_per_byte` times this); ``trained_params``: their number (ZeRO keeps an fp32
    master copy and moments, 12 bytes each); ``tokenizer``: bytes of its saved files (None: not
    counted, with a note); ``config_bytes``: adapter_config.json / config.json. ``look``: read the
    free space of output_dir's disk. ``args``: the run's Trainer arguments (default: the config's).
    """
    args = args if args is not None else cfg.training_arguments(portable=True)
    saves = len(plan.save_steps) if str(getattr(args.save_strategy, "value", args.save_strategy)) != "no" else 0
    notes = []
    if args.save_only_model:
        optimizer = 0
    elif zero_stage:
        optimizer = 12 * trained_params + trained  # DeepSpeed: fp32 master weights + 2 fp32 moments, and the module
        notes.append(f"ZeRO-{zero_stage}: DeepSpeed saves fp32 master weights and moments (12 bytes per trained parameter).")
    else:
        optimizer = int(moments_per_byte(args.optim) * trained)
    rng = 0 if args.save_only_model else rng_state_bytes() * devices
    sched = 0 if args.save_only_model else scheduler_bytes(args, plan.max_steps)
    state = trainer_state_bytes(plan.max_steps, len(plan.log_steps), len(plan.eval_steps))
    args_bytes = _saved_size(args)
    if tokenizer is None:
        notes.append("tokenizer not counted: no tokenizer files to measure (give --model a local model folder to count them).")
    tok = tokenizer or 0
    checkpoint = {"weights": weights, "optimizer": optimizer, "scheduler": sched, "rng": rng, "tokenizer": tok,
                  "other": state + args_bytes + config_bytes}
    final = {"weights": weights, "tokenizer": tok, "other": args_bytes + config_bytes}
    out = Path(args.output_dir)
    free = free_bytes(out) if look else None
    return DiskPlan(out, checkpoint, final, saves, args.save_total_limit, free, notes)


def plan_disk_for_model(cfg, plan, model, tokenizer, *, look: bool = True, args=None) -> DiskPlan:
    """:func:`plan_disk` from a loaded model (PEFT-wrapped or not) and tokenizer, as ``train()`` has them."""
    trained = [p for p in model.parameters() if p.requires_grad]
    trained_bytes = sum(p.numel() * p.element_size() for p in trained)
    is_peft = hasattr(model, "peft_config")
    weights = trained_bytes if is_peft else sum(p.numel() * p.element_size() for p in model.parameters())
    config = getattr(model, "peft_config", {}).get("default") if is_peft else getattr(model, "config", None)
    config_bytes = len(json.dumps(config.to_dict(), indent=2, default=str)) if config is not None else 0
    return plan_disk(cfg, plan, weights=weights, trained=trained_bytes, trained_params=sum(p.numel() for p in trained),
                     tokenizer=tokenizer_bytes_of(tokenizer), config_bytes=config_bytes, look=look, args=args,
                     devices=getattr(args, "world_size", 1))


def plan_disk_for_config(cfg, plan, model_config, *, dtype: str, tokenizer: int | None, devices: int = 1,
                         look: bool = True, trainables=None) -> DiskPlan:
    """:func:`plan_disk` from a model's config (counted on the meta device, no weights), as ``gluekit plan`` has it.

    ``trainables``: :func:`gluekit.memory.count_trainables`' answer when already counted. Raises
    NotImplementedError for a PEFT method other than LoRA (as the memory estimate does).
    """
    from .memory import ADAPTER_BYTES, DTYPE_BYTES, count_trainables, zero_stage_of

    peft = cfg.peft_config_object()
    t = trainables if trainables is not None else count_trainables(model_config, peft)
    w = DTYPE_BYTES[str(dtype).replace("torch.", "")]
    per = ADAPTER_BYTES if t.method == "LORA" else w
    weights = t.trainable_params * ADAPTER_BYTES if t.method == "LORA" else t.total_params * w
    config = peft.to_dict() if peft is not None else model_config.to_dict()
    return plan_disk(cfg, plan, weights=weights, trained=t.trainable_params * per, trained_params=t.trainable_params,
                     tokenizer=tokenizer, config_bytes=len(json.dumps(config, indent=2, default=str)),
                     zero_stage=zero_stage_of(cfg), devices=devices, look=look)


__all__ = ["MiB", "TOKENIZER_FILES", "human", "existing_parent", "free_bytes", "is_disk_full", "disk_full_error",
           "checkpoint_bytes_estimate",
           "rng_state_bytes", "scheduler_bytes", "trainer_state_bytes", "moments_per_byte", "DiskPlan",
           "tokenizer_bytes_of", "tokenizer_bytes_in", "plan_disk", "plan_disk_for_model", "plan_disk_for_config"]
