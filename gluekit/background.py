"""Train in a background thread, so a notebook's kernel stays free (its widgets answer) while a run goes on.

:class:`BackgroundTraining` runs :func:`gluekit.train.train` in a thread; :meth:`~BackgroundTraining.stop`
raises a flag that :class:`StopFlag`, a ``TrainerCallback``, reads at the end of every optimizer step:
it sets the Trainer's own ``control.should_training_stop``, so the run ends the way a finished one does
(the adapter is saved, the test set evaluated). The control panel (:mod:`gluekit.viz.panel`) starts
and stops its runs through this class.
"""
from __future__ import annotations

import threading
import traceback
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from .errors import GluekitError


class StopFlag(TrainerCallback):
    """Stop training after the current optimizer step once :attr:`event` is set."""

    def __init__(self):
        self.event = threading.Event()
        self.stopped_at: int | None = None
        """The step after which training stopped on request (None: it was not stopped)."""

    def on_step_end(self, args, state, control, **kwargs):
        if self.event.is_set() and self.stopped_at is None:
            control.should_training_stop = True
            self.stopped_at = state.global_step


class BackgroundTraining:
    """``train(config, data_dir, model, callbacks=[...], **train_kwargs)`` in a daemon thread.

    After the thread ends, :attr:`result` holds the :class:`gluekit.train.RunResult`, or :attr:`error`
    one line saying what went wrong (a :class:`~gluekit.errors.GluekitError`'s message, else the
    exception's type and text, with :attr:`traceback` for a bug). ``on_done(self)`` is called in the
    thread when it ends, either way.
    """

    def __init__(self, config: Any, data_dir: str | Path, model: str | None = None, *, callbacks: list | None = None,
                 on_done: Callable[[BackgroundTraining], None] | None = None, **train_kwargs: Any):
        self.config, self.data_dir, self.model = config, data_dir, model
        self.flag = StopFlag()
        self.callbacks = [*(callbacks or []), self.flag]
        self.on_done = on_done
        self.train_kwargs = train_kwargs
        self.result = None
        self.error: str | None = None
        self.traceback: str | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> BackgroundTraining:
        if self.thread is not None:
            raise GluekitError("this run was started already; make a new BackgroundTraining to train again.")
        self.thread = threading.Thread(target=self._run, name="gluekit-training", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop after the step in progress (returns at once; :meth:`join` waits)."""
        self.flag.event.set()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def stopped_at(self) -> int | None:
        return self.flag.stopped_at

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running

    def _run(self) -> None:
        from .train import train

        try:
            self.result = train(self.config, self.data_dir, self.model, callbacks=self.callbacks, **self.train_kwargs)
        except GluekitError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 (a thread has no caller to raise to: kept and shown)
            self.error = f"{type(e).__name__}: {e}"
            self.traceback = traceback.format_exc()
        finally:
            if self.on_done is not None:
                self.on_done(self)


__all__ = ["StopFlag", "BackgroundTraining"]
