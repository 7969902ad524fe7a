"""Stop training cleanly: Ctrl-C, a Jupyter kernel interrupt or SIGTERM end with a checkpoint of the step.

What a learner does to stop a cell (the kernel interrupt: SIGINT, raised in the training loop as
KeyboardInterrupt), what a terminal sends on Ctrl-C (SIGINT), and what Slurm, Kubernetes and
preemptible cloud machines send before killing a job (SIGTERM, with a grace period: 30 s by
default in Slurm, Kubernetes and torchrun) all lose every step since the last checkpoint when
they kill the run where it stands. While the Trainer trains, :class:`StopOnSignal` answers them
instead:

1. The signal handler only records the signal (and says so on stderr: at once on a terminal,
   otherwise, as in a notebook kernel, at the step end, with the cell's own output). It never saves:
   the signal can land anywhere (mid-forward, mid-backward, inside the optimizer step), where the
   weights, gradients and optimizer state do not agree with each other.
2. At the end of the optimizer step in progress (``on_step_end``: the step is finished and
   counted, its gradients applied, the scheduler stepped) the callback asks the Trainer to log,
   save and stop (``control.should_log / should_save / should_training_stop``). The Trainer then
   writes ``checkpoint-<step>`` with its own machinery (weights, optimizer, scheduler, RNG state,
   and trainer_state.json last, see :mod:`gluekit.checkpoints`), exactly as at a ``save_steps``
   step, so ``--resume latest`` continues as if nothing had happened.
3. An evaluation in progress when the signal comes finishes first (``on_evaluate``), so its
   scores are logged and kept in the checkpoint of that step; stopping it half-way would lose
   them for good (a resumed run does not evaluate that step again). On GLM-4-9B an evaluation can
   take minutes: a second Ctrl-C stops at once.
4. A second signal while waiting or saving raises KeyboardInterrupt at once; a checkpoint being
   written is then removed by :class:`gluekit.trainer.GenerationEvalTrainer` (never left half
   written), and the last complete one stays the resume point.
5. Under torchrun the agent forwards a signal to every rank, and a ``kill`` may reach one rank
   only: at each step end the ranks take the maximum of their flags (one ``all_reduce`` of one
   number, only when ``world_size > 1``), so all stop after the same step and save together.

Signal handlers can only be set from the main thread; training started elsewhere keeps Python's
own handling. The handlers are set only while ``Trainer.train`` runs and restored afterwards,
also on errors, so a notebook's next Ctrl-C interrupts its next cell as usual.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from transformers import TrainerCallback

from .checkpoints import list_checkpoints
from .errors import TrainingInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
SIGNAL_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C or a kernel interrupt)", signal.SIGTERM: "SIGTERM"}


class StopOnSignal(TrainerCallback):
    """Turn SIGINT / SIGTERM into "save a checkpoint at the end of this step, then stop" (see the module docstring).

    ``signum``: the signal received (None: none); ``stopped_at``: the step after which training
    stopped (None: it did not stop at a step end).
    """

    def __init__(self):
        self.signum: int | None = None
        self.stopped_at: int | None = None
        self._noted = False
        self._armed = False

    @contextlib.contextmanager
    def listening(self):
        """Install the handlers for the block (main thread only), then put back the previous ones."""
        self.signum, self.stopped_at, self._noted = None, None, False
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                try:
                    previous[s] = signal.signal(s, self._handle)
                except (ValueError, OSError):  # e.g. an embedded interpreter that forbids it
                    pass
        self._armed = True
        try:
            yield self
        finally:
            self._armed = False
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:  # the second one: stop now
            raise KeyboardInterrupt
        self.signum = signum
        # At once on a terminal (os.write, not print: a handler may run while the main thread is inside
        # print itself); elsewhere (a notebook kernel, a batch log) from the step end, through sys.stderr,
        # where a kernel shows it with the cell's own output.
        if os.isatty(2):
            os.write(2, f"\n{self._note()}\n".encode())
            self._noted = True

    def _note(self) -> str:
        return (f"{signal.Signals(self.signum).name} received: training stops after the current step and saves a "
                "checkpoint of it. Press Ctrl-C again to stop at once, without it.")

    def _agreed(self, args) -> int:
        """The signal number every rank saw (0: none): the maximum over ranks under torchrun."""
        mine = int(self.signum or 0)
        if getattr(args, "world_size", 1) > 1:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                flag = torch.tensor([mine], dtype=torch.int64, device=args.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                mine = int(flag.item())
        return mine

    def _check(self, args, state, control):
        if not self._armed or self.stopped_at is not None:
            return control
        signum = self._agreed(args)
        if signum:
            self.signum = self.signum or signum  # a rank the signal did not reach
            if not self._noted:
                print(self._note(), file=sys.stderr, flush=True)
                self._noted = True
            self.stopped_at = state.global_step
            control.should_log = control.should_save = control.should_training_stop = True
        return control

    def on_step_end(self, args, state, control, **kwargs):
        return self._check(args, state, control)

    def on_evaluate(self, args, state, control, **kwargs):
        return self._check(args, state, control)


def interruption(output_dir: str | Path, signum: int, stopped_at: int | None = None,
                 max_steps: int | None = None) -> TrainingInterrupted:
    """The :class:`TrainingInterrupted` to raise: where training stopped and what to resume from, if anything.

    ``stopped_at``: the step a checkpoint was saved for (None: stopped at once, or before the
    training loop). The advice to resume appears only when a complete checkpoint exists.
    """
    out = Path(output_dir)
    name = SIGNAL_NAMES.get(signum, f"signal {signum}")
    ckpts = list_checkpoints(out)
    latest = ckpts[-1] if ckpts else None
    saved = out / f"checkpoint-{stopped_at}" if stopped_at is not None else None
    of = f" of {max_steps}" if max_steps else ""
    resume = "`gluekit train ... --resume latest` (in Python: resume=\"latest\") continues from it."
    if saved is not None and saved == latest:
        msg = f"training stopped by {name} after step {stopped_at}{of}; saved {saved.name} in {out}. {resume}"
        return TrainingInterrupted(msg, signum, saved, saved)
    where = f" after step {stopped_at}{of}" if stopped_at is not None else ""
    if latest is not None:
        msg = (f"training stopped at once by {name}{where}; the last complete checkpoint is {latest.name} in {out} "
               f"(steps after it are lost). {resume}")
    else:
        msg = (f"training stopped by {name}{where} before any checkpoint was saved in {out}: there is nothing to "
               "resume from. Run the same command again to start over.")
    return TrainingInterrupted(msg, signum, None, latest)


__all__ = ["SIGNALS", "StopOnSignal", "interruption"]
