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
  one the config check would refuse (>= 1), so the weights really blow up.

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

SPEC_RE = re.compile(r"(kill|pause|nan)@(step|eval|save):(\d+)|checksum")


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


class AdapterChecksum(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        total = float(sum(p.detach().double().abs().sum() for p in model.parameters() if p.requires_grad))
        print(f"rank {args.process_index} adapter checksum {total!r}", flush=True)


def callback_for(spec: str, marker: str | Path | None = None) -> TrainerCallback:
    """The callback SPEC names (see the module docstring)."""
    m = SPEC_RE.fullmatch(spec)
    if not m:
        raise ValueError(f"{spec!r}: expected kill@step:N, pause@eval:N, kill@save:N, nan@step:N or checksum")
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
