"""Test-only: run ``gluekit train`` with a fault (or a probe) plugged in. gluekit never imports this.

Each fault is a ``transformers.TrainerCallback`` that reaches the run through the public
``callbacks=`` argument of :func:`gluekit.train.train`:

- ``kill@step:N``  SIGKILL during optimizer step N, after backward, before the optimizer applies it;
- ``pause@eval:N`` during the evaluation at step N, replies generated and scored, before the metrics
  are logged: write the marker file, then sleep until the test kills the process from outside;
- ``kill@save:N``  SIGKILL while checkpoint-N is being written: weights (and training_args.bin) on
  disk, optimizer, scheduler, RNG state and trainer_state.json not yet. No callback runs inside
  the Trainer's save, so this one wraps ``torch.save`` from the outside and dies when the Trainer
  starts saving ``checkpoint-N/optimizer.pt``;
- ``nan@step:N``   set the trainable weights to NaN just before step N, so its loss is NaN;
- :class:`ForceLearningRate` (in-process only) makes the optimizer step at a given learning rate,
  one the config check would refuse (>= 1), so the weights really blow up;
- ``int@step:N`` / ``term@step:N``  a real SIGINT / SIGTERM to this process during optimizer step N,
  after backward, before the optimizer applies it (what Ctrl-C or a scheduler's SIGTERM does when it
  lands mid-step); ``int@eval:N`` the same during the evaluation at step N (:class:`SignalAt`);
- :class:`SignalAt` with ``again_while_saving=True`` (in-process only): the same signal once more
  while checkpoint-N is being written (weights on disk, optimizer.pt not yet), a second Ctrl-C;
- :class:`DiskFull` (in-process only): the disk fills up at a chosen write (checkpoint-N's
  optimizer.pt through torch.save, or the final adapter through PEFT's safetensors save), raising
  exactly what a full disk raises there (measured on a 3 MB tmpfs), while the disk reports little free.

And one probe: ``checksum`` prints, on every rank at the end of training, the sum of |trainable
weights| (equal on every rank when DDP keeps them in sync).

As a script, ``python tests/train_with.py SPEC [--marker FILE] -- ARGS`` runs the real command
line ``gluekit ARGS`` with SPEC's callback added to its ``train()`` call (also under torchrun).
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

SPEC_RE = re.compile(r"(kill|pause|nan|int|term)@(step|eval|save):(\d+)|checksum")


def _die() -> None:
    """SIGKILL this process, as the OOM killer would: no clean-up, nothing more written."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillAtStep(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step:
            _die()


class PauseAtEval(TrainerCallback):
    def __init__(self, step: int, marker: str | Path):
        self.step, self.marker = step, Path(marker)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.global_step == self.step and any(k.startswith("eval_") for k in logs or {}):
            from gluekit.fileio import write_text

            write_text(self.marker, f"eval:{self.step}\n")  # whole or absent: the test polls for it
            sys.stdout.flush()
            time.sleep(3600)  # until the test kills this process


class KillWhileSaving(TrainerCallback):
    def __init__(self, step: int):
        self.step = step
        self._save = None

    def on_train_begin(self, args, state, control, **kwargs):
        real = self._save = torch.save
        target = f"checkpoint-{self.step}"

        def save(obj, f, *a, **kw):
            if isinstance(f, (str, os.PathLike)) and Path(f).name == "optimizer.pt" and Path(f).parent.name == target:
                _die()
            return real(obj, f, *a, **kw)

        torch.save = save

    def on_train_end(self, args, state, control, **kwargs):
        if self._save is not None:
            torch.save = self._save


class NanAtStep(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == self.step:
            with torch.no_grad():
                for p in model.parameters():
                    if p.requires_grad:
                        p.fill_(float("nan"))


class ForceLearningRate(TrainerCallback):
    def __init__(self, lr: float):
        self.lr = lr

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        for group in optimizer.param_groups:  # the scheduler resets it after each step: set it before each
            group["lr"] = self.lr


class SignalAt(TrainerCallback):
    """Send ``signum`` to this process at step ``step`` (phase "step": mid-step; "eval": during that evaluation).

    ``again_while_saving``: send it a second time while ``checkpoint-<step>`` is being written.
    """

    def __init__(self, step: int, signum: int = signal.SIGINT, phase: str = "step", again_while_saving: bool = False):
        self.step, self.signum, self.phase, self.again = step, signum, phase, again_while_saving
        self._save = None

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.phase == "step" and state.global_step + 1 == self.step:
            signal.raise_signal(self.signum)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.phase == "eval" and state.global_step == self.step and any(k.startswith("eval_") for k in logs or {}):
            signal.raise_signal(self.signum)

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.again:
            return
        real = self._save = torch.save
        target, signum = f"checkpoint-{self.step}", self.signum

        def save(obj, f, *a, **kw):
            if isinstance(f, (str, os.PathLike)) and Path(f).name == "optimizer.pt" and Path(f).parent.name == target:
                torch.save = real  # once; the run ends here, before on_train_end
                signal.raise_signal(signum)
            return real(obj, f, *a, **kw)

        torch.save = save


# What a full disk raises, measured by writing into a 3 MB tmpfs: Python's own writes, safetensors, torch.save.
def enospc_oserror():
    import errno

    return OSError(errno.ENOSPC, "No space left on device")


def enospc_safetensors():
    from safetensors import SafetensorError

    return SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def enospc_torch_save():
    try:
        raise RuntimeError("basic_ios::clear: iostream error")
    except RuntimeError:
        try:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        except RuntimeError as e:
            return e


class DiskFull(contextlib.AbstractContextManager):
    """``with DiskFull("checkpoint-4"):`` the disk fills up when checkpoint-4's optimizer.pt is written;
    ``with DiskFull("adapter"):`` when the final adapter's weights are written. From then on the disk
    reports ``free`` bytes free (``shutil.disk_usage``)."""

    def __init__(self, where: str, free: int = 3 * 2 ** 20 // 10):
        self.where, self.free, self.full = where, free, False
        self._undo = []

    def _patch(self, owner, name, fake):
        real = getattr(owner, name)
        setattr(owner, name, fake(real))
        self._undo.append((owner, name, real))

    def __enter__(self):
        import shutil

        import peft.peft_model

        def torch_save(real):
            def save(obj, f, *a, **kw):
                if isinstance(f, (str, os.PathLike)) and Path(f).name == "optimizer.pt" and Path(f).parent.name == self.where:
                    self.full = True
                    Path(f).write_bytes(b"PK\x03\x04")  # what reached the disk before it filled up
                    raise enospc_torch_save()
                return real(obj, f, *a, **kw)
            return save

        def safe_save(real):
            def save(tensors, filename, *a, **kw):
                if self.where == "adapter" and Path(filename).parent.name.startswith("adapter"):
                    self.full = True
                    Path(filename).write_bytes(b"\x10")
                    raise enospc_safetensors()
                return real(tensors, filename, *a, **kw)
            return save

        def disk_usage(real):
            def usage(path):
                total, used, free = real(path)
                return shutil._ntuple_diskusage(total, used, self.free) if self.full else shutil._ntuple_diskusage(total, used, free)
            return usage

        self._patch(torch, "save", torch_save)
        self._patch(peft.peft_model, "safe_save_file", safe_save)
        self._patch(shutil, "disk_usage", disk_usage)
        return self

    def __exit__(self, *exc):
        for owner, name, real in reversed(self._undo):
            setattr(owner, name, real)
        return False


class AdapterChecksum(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        total = float(sum(p.detach().double().abs().sum() for p in model.parameters() if p.requires_grad))
        print(f"rank {args.process_index} adapter checksum {total!r}", flush=True)


def callback_for(spec: str, marker: str | Path | None = None) -> TrainerCallback:
    """The callback SPEC names (see the module docstring)."""
    m = SPEC_RE.fullmatch(spec)
    if not m:
        raise ValueError(f"{spec!r}: expected kill@step:N, pause@eval:N, kill@save:N, nan@step:N, int@step:N, "
                         "term@step:N, int@eval:N or checksum")
    if spec == "checksum":
        return AdapterChecksum()
    action, phase, step = m.group(1), m.group(2), int(m.group(3))
    if (action, phase) == ("kill", "step"):
        return KillAtStep(step)
    if (action, phase) == ("pause", "eval"):
        if marker is None:
            raise ValueError("pause@eval:N needs --marker FILE")
        return PauseAtEval(step, marker)
    if (action, phase) == ("kill", "save"):
        return KillWhileSaving(step)
    if (action, phase) == ("nan", "step"):
        return NanAtStep(step)
    if action in ("int", "term") and phase in ("step", "eval"):
        return SignalAt(step, signal.SIGINT if action == "int" else signal.SIGTERM, phase)
    raise ValueError(f"{spec!r}: no such fault")


@contextlib.contextmanager
def extra_callbacks(*callbacks: TrainerCallback):
    """Every ``gluekit.train.train`` call inside the block gets ``callbacks`` after its own.

    ``gluekit train`` looks ``train`` up in gluekit.train when the command runs, so it sees this.
    """
    import gluekit.train as recipe

    real = recipe.train

    def train(*args, callbacks=None, **kwargs):
        return real(*args, callbacks=[*(callbacks or []), *extra], **kwargs)

    extra = list(callbacks)
    recipe.train = train
    try:
        yield
    finally:
        recipe.train = real


def main(argv: list[str]) -> int:
    spec, rest = argv[0], argv[1:]
    marker = None
    if rest[:1] == ["--marker"]:
        marker, rest = rest[1], rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    from gluekit.cli import main as gluekit_main

    with extra_callbacks(callback_for(spec, marker)):
        return gluekit_main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
