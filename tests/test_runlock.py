"""One run per output folder: the lock, its record, refusals and take-overs (no training here;
two real ``gluekit train`` processes meet in tests/test_resume.py)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from gluekit.errors import TrainingError
from gluekit.runlock import LOCK_NAME, RECORD_NAME, RunLock, holder_running, read_record


def test_a_second_holder_is_refused_with_the_first_ones_pid_and_start_time(tmp_path):
    out = tmp_path / "run"
    with RunLock(out) as first:
        record = read_record(out)
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert time.strptime(record["started"], "%Y-%m-%d %H:%M:%S")
        assert first.note is None
        with pytest.raises(TrainingError) as e:
            with RunLock(out):
                pass
        assert e.value.problems == [
            f"`training_args.output_dir`: {out} is in use by another run (pid {os.getpid()} on host "
            f"{socket.gethostname()}, started {record['started']}). Wait for it to finish or stop it, or pick another output_dir."]
        assert read_record(out) == record  # the refused one changed nothing
    assert read_record(out) is None and (out / LOCK_NAME).exists()  # released: the record goes, the lock file stays


def test_released_on_errors_so_a_notebook_can_train_again(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with RunLock(tmp_path):
            1 / 0
    with pytest.raises(KeyboardInterrupt):
        with RunLock(tmp_path):
            raise KeyboardInterrupt
    with RunLock(tmp_path) as again:  # taken again at once: nothing left behind
        assert again.note is None


def test_a_dead_process_lock_on_this_host_is_taken_over_with_a_note(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    record = {"pid": pid, "host": socket.gethostname(), "started_at": time.time() - 60, "started": "2026-11-30 12:00:00"}
    (tmp_path / RECORD_NAME).write_text(json.dumps(record))  # what a SIGKILLed run leaves
    assert holder_running(record) is False
    with RunLock(tmp_path) as lock:
        assert lock.note == (f"{tmp_path} was locked by pid {pid} on host {socket.gethostname()}, started 2026-11-30 "
                             "12:00:00, which is no longer running (killed without clean-up); this run takes it over.")
        assert read_record(tmp_path)["pid"] == os.getpid()


def test_a_reused_pid_counts_as_gone_and_another_hosts_record_is_not_taken_over(tmp_path):
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time() - 10 ** 7}
    assert holder_running(mine) is False  # this pid started long after the record: a different process
    assert holder_running({**mine, "started_at": time.time()}) is True
    other = {"pid": 1234, "host": "gpu-node-7", "started_at": time.time(), "started": "2026-11-30 12:00:00"}
    assert holder_running(other) is None
    (tmp_path / RECORD_NAME).write_text(json.dumps(other))
    with pytest.raises(TrainingError) as e:
        with RunLock(tmp_path):
            pass
    assert e.value.problems == [
        f"`training_args.output_dir`: {tmp_path} holds the lock record of a run on another machine (pid 1234 on host "
        "gpu-node-7, started 2026-11-30 12:00:00); gluekit cannot tell from here whether it still writes there. Once it "
        f"is over, delete {tmp_path / RECORD_NAME} and start again."]
    assert read_record(tmp_path) == other


def test_a_live_holder_on_a_file_system_without_a_shared_lock_is_still_refused(tmp_path):
    parent = {"pid": os.getppid(), "host": socket.gethostname(), "started_at": time.time(), "started": "now"}
    (tmp_path / RECORD_NAME).write_text(json.dumps(parent))  # the OS lock is free, but its record names a live process
    with pytest.raises(TrainingError, match=rf"is in use by another run \(pid {os.getppid()} on host"):
        with RunLock(tmp_path):
            pass


def test_only_enabled_ranks_lock(tmp_path):
    with RunLock(tmp_path / "a", enabled=False):
        assert not (tmp_path / "a").exists()
        with RunLock(tmp_path / "a"):
            pass
