"""One run per output folder: a lock held for the run's life, with a record of who holds it.

Two runs writing into one ``output_dir`` mix their checkpoints, adapter and results, and
``--overwrite`` in the second would delete the first one's checkpoints while it writes them.
:class:`RunLock` takes ``output_dir/.gluekit-run.lock`` with the ``filelock`` package (an OS lock,
``flock``, which the kernel releases when the holder dies, however it dies; filelock falls back
to a lock file of its own where the file system has no ``flock``), then writes the holder's
pid, host and start time to ``output_dir/.gluekit-run.json``. A second run finds the lock taken
and refuses, naming the holder from that record.

The record outlives a holder killed without clean-up (kill -9, out of memory, a lost machine).
The next run then gets the OS lock, finds the record and, when it names a process of THIS host
that is gone, takes over with a note. A record from another host is not taken over: from here
gluekit cannot tell whether that run still writes (a file system whose ``flock`` does not reach
across machines would let both in), so the message says which file to delete once it is over.

Under torchrun only global rank 0 locks (the ranks of one run share the folder by design).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import TrainingError
from .fileio import write_json

LOCK_NAME = ".gluekit-run.lock"
RECORD_NAME = ".gluekit-run.json"


def _process_started(pid: int) -> float | None:
    """Start time (epoch seconds) of process ``pid`` on this host, or None if there is no such process."""
    import psutil  # installed with accelerate and peft

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:  # no permission to look: assume it runs
        return time.time()


def holder_running(record: dict) -> bool | None:
    """Whether the process a lock record names still runs: True / False on this host, None for another host.

    A pid reused by a later process (started after the record) counts as gone.
    """
    if record.get("host") != socket.gethostname():
        return None
    started = _process_started(int(record.get("pid", -1)))
    return started is not None and started <= float(record.get("started_at", 0)) + 1.0


def describe(record: dict | None) -> str:
    """``pid 123 on host h, started 2026-11-30 12:00:03`` (or what is known of it)."""
    if not record:
        return "a run that has not written its record yet"
    return f"pid {record.get('pid', '?')} on host {record.get('host', '?')}, started {record.get('started', '?')}"


def read_record(output_dir: str | Path) -> dict | None:
    """The holder record in ``output_dir``, or None (none, or unreadable)."""
    try:
        record = json.loads((Path(output_dir) / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


class RunLock:
    """``with RunLock(output_dir):`` the run's exclusive hold on ``output_dir`` (created if absent).

    Refuses at once (no waiting) with a :class:`TrainingError` naming the holder. ``note`` is set
    when a dead process's record was taken over (the caller prints it). Released on leaving the
    block, also on errors and interrupts, so a notebook kernel can train into the same folder
    again. ``enabled=False`` (torchrun ranks other than 0) does nothing.
    """

    def __init__(self, output_dir: str | Path, enabled: bool = True):
        self.output_dir = Path(output_dir)
        self.enabled = enabled
        self.note: str | None = None
        self._lock = None

    def __enter__(self) -> "RunLock":
        if not self.enabled:
            return self
        from filelock import FileLock, Timeout

        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(out / LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise TrainingError(
                f"`training_args.output_dir`: {out} is in use by another run ({describe(read_record(out))}). "
                "Wait for it to finish or stop it, or pick another output_dir.") from None
        try:
            self._take_over(out)
            now = time.time()
            write_json(out / RECORD_NAME, {
                "pid": os.getpid(), "host": socket.gethostname(), "started_at": now,
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
                "command": " ".join(sys.argv)})
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        return self

    def _take_over(self, out: Path) -> None:
        record = read_record(out)
        if record is None or (record.get("pid") == os.getpid() and record.get("host") == socket.gethostname()):
            return
        running = holder_running(record)
        if running is None:
            raise TrainingError(
                f"`training_args.output_dir`: {out} holds the lock record of a run on another machine "
                f"({describe(record)}); gluekit cannot tell from here whether it still writes there. "
                f"Once it is over, delete {out / RECORD_NAME} and start again.")
        if running:  # the OS lock is ours, yet its holder runs: a file system without a shared lock
            raise TrainingError(
                f"`training_args.output_dir`: {out} is in use by another run ({describe(record)}). "
                "Wait for it to finish or stop it, or pick another output_dir.")
        self.note = (f"{out} was locked by {describe(record)}, which is no longer running "
                     "(killed without clean-up); this run takes it over.")

    def __exit__(self, *exc) -> None:
        if self._lock is None:
            return
        try:
            (self.output_dir / RECORD_NAME).unlink(missing_ok=True)
        finally:
            self._lock.release()
            self._lock = None


__all__ = ["LOCK_NAME", "RECORD_NAME", "RunLock", "read_record", "holder_running", "describe"]
