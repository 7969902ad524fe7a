"""gluekit.stopping without a training run: the handlers, the step-end decision, the messages, and
two real processes agreeing on the step through a gloo process group (the torchrun case).

Training runs that are stopped by real signals are in tests/test_resume.py."""
from __future__ import annotations

import signal
import threading
from types import SimpleNamespace

import pytest
from checkpoint_files import write_checkpoint

from gluekit.errors import TrainingInterrupted
from gluekit.stopping import StopOnSignal, interruption

ARGS = SimpleNamespace(world_size=1, device="cpu")


def _control():
    from transformers import TrainerControl

    return TrainerControl()


def test_a_signal_only_sets_a_flag_and_the_step_end_stops_with_a_save():
    cb = StopOnSignal()
    before = signal.getsignal(signal.SIGINT)
    with cb.listening():
        control = cb.on_step_end(ARGS, SimpleNamespace(global_step=3), _control())
        assert not (control.should_save or control.should_training_stop)
        signal.raise_signal(signal.SIGTERM)  # lands anywhere: only recorded
        assert cb.signum == signal.SIGTERM and cb.stopped_at is None
        control = cb.on_step_end(ARGS, SimpleNamespace(global_step=4), _control())
        assert control.should_save and control.should_training_stop and control.should_log and cb.stopped_at == 4
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # the second one: at once
    assert signal.getsignal(signal.SIGINT) is before  # a notebook's next Ctrl-C works as before
    control = cb.on_step_end(ARGS, SimpleNamespace(global_step=5), _control())  # not listening: nothing happens
    assert not control.should_save


def test_handlers_come_back_after_an_error_and_are_not_set_off_the_main_thread():
    cb = StopOnSignal()
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ZeroDivisionError):
        with cb.listening():
            assert signal.getsignal(signal.SIGTERM) == cb._handle
            1 / 0
    assert signal.getsignal(signal.SIGTERM) is before
    seen = []
    t = threading.Thread(target=lambda: seen.append(cb.listening().__enter__() and signal.getsignal(signal.SIGTERM)))
    t.start()
    t.join()
    assert seen == [before]


def test_the_message_advises_resuming_only_when_there_is_a_checkpoint(tmp_path):
    e = interruption(tmp_path, signal.SIGINT)
    assert isinstance(e, TrainingInterrupted) and isinstance(e, KeyboardInterrupt)
    assert str(e) == (f"training stopped by SIGINT (Ctrl-C or a kernel interrupt) before any checkpoint was saved in "
                      f"{tmp_path}: there is nothing to resume from. Run the same command again to start over.")
    assert e.resume_from is None and "--resume" not in str(e)
    write_checkpoint(tmp_path, 10)
    e = interruption(tmp_path, signal.SIGTERM, None, 40)
    assert str(e) == (f"training stopped at once by SIGTERM; the last complete checkpoint is checkpoint-10 in {tmp_path} "
                      "(steps after it are lost). `gluekit train ... --resume latest` (in Python: resume=\"latest\") "
                      "continues from it.")
    assert e.signal_number == 15 and e.checkpoint is None and e.resume_from == tmp_path / "checkpoint-10"
    write_checkpoint(tmp_path, 13)
    e = interruption(tmp_path, signal.SIGINT, 13, 40)
    assert str(e).startswith(f"training stopped by SIGINT (Ctrl-C or a kernel interrupt) after step 13 of 40; saved "
                             f"checkpoint-13 in {tmp_path}.")
    assert e.checkpoint == e.resume_from == tmp_path / "checkpoint-13"


def _rank(rank: int, store: str, results) -> None:
    """One rank of a 2-process gloo group (a forked child: gluekit and transformers are already imported)."""
    import torch.distributed as dist
    from transformers import TrainerControl

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    cb, args, seen = StopOnSignal(), SimpleNamespace(world_size=2, device="cpu"), []
    with cb.listening():
        for step in (1, 2, 3):
            if rank == 1 and step == 2:
                signal.raise_signal(signal.SIGTERM)  # a kill that reached rank 1 only
            c = cb.on_step_end(args, SimpleNamespace(global_step=step), TrainerControl())
            seen.append([step, c.should_save, c.should_training_stop])
            if c.should_training_stop:
                break
    results.put({"rank": rank, "seen": seen, "signum": cb.signum, "stopped_at": cb.stopped_at})
    dist.destroy_process_group()


def test_torchrun_ranks_agree_on_the_step(tmp_path):
    """Two processes in a gloo group; SIGTERM reaches rank 1 only, during step 2: both stop and save after step 2.

    Forked from this process (no second import of torch and transformers: about 5 s of CPU each)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, str(tmp_path / "store"), results)) for r in (0, 1)]
    for p in procs:
        p.start()
    got = sorted((results.get(timeout=300) for _ in procs), key=lambda r: r["rank"])
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [r["rank"] for r in got] == [0, 1]
    for r in got:
        assert r["seen"] == [[1, False, False], [2, True, True]], r
        assert r["signum"] == 15 and r["stopped_at"] == 2
