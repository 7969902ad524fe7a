"""Interrupted training: SIGKILL ``gluekit train`` at chosen points, resume with ``--resume latest``,
and get the run that was never interrupted, to the bit (CPU, deterministic).

The faults are test-only TrainerCallbacks (``tests/train_with.py``) plugged into the real command
line through ``train(callbacks=...)``. One chain of four processes hits three kill points in turn:

1. ``kill@step:13``  mid-step (after backward, before the optimizer step); checkpoint-10 is complete;
2. ``pause@eval:15`` during the evaluation at step 15; the TEST kills the process from outside;
3. ``kill@save:20``  while checkpoint-20 is being written (weights on disk, trainer_state.json not);
4. no fault: plain ``gluekit train`` resumes from checkpoint-10 (skipping the half-written
   checkpoint-20) and finishes.

A reference run without faults goes alongside; adapters, log histories and checkpoints must match.
Both use one thread each (``OMP_NUM_THREADS=1``), so they can run side by side and still agree.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gluekit.checkpoints import incomplete_checkpoints, list_checkpoints
from gluekit.cli import main
from gluekit.errors import TrainingError, TrainingInterrupted
from train_with import NanAtStep, SignalAt, extra_callbacks  # tests/train_with.py: test-only faults

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "tiny.yaml"
TRAIN_WITH = Path(__file__).resolve().parent / "train_with.py"
ARGS = [
    "-o", "training_args.max_steps=30", "-o", "training_args.save_steps=10", "-o", "training_args.eval_steps=15",
    "-o", "training_args.logging_steps=5", "-o", "training_args.log_level=warning",
    "-o", "training_args.per_device_train_batch_size=4", "-o", "training_args.per_device_eval_batch_size=8",
    "-o", "training_args.generation_config.max_new_tokens=8", "-o", "data_config.test_file=null",
]
# Keys of a log record that measure time, and train_loss: after a resume the Trainer averages it
# over the resumed steps only (transformers behaviour; the per-step losses are what must match).
VOLATILE = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss",
            "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


def _env() -> dict:
    return {**os.environ, "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1"}


def _start(data: Path, out: Path, *extra: str, fault: str | None = None, marker: Path | None = None) -> subprocess.Popen:
    """``gluekit train`` on the small data into ``out``; with a fault, through tests/train_with.py."""
    args = ["train", str(TINY), "--data-dir", str(data), *ARGS, "-o", f"training_args.output_dir={out}", *extra]
    runner = [sys.executable, "-m", "gluekit"]
    if fault:
        runner = [sys.executable, str(TRAIN_WITH), fault, *(["--marker", str(marker)] if marker else []), "--"]
    return subprocess.Popen(runner + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _log(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["log_history"]


def _steady(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in VOLATILE} for e in log]


def _same_records(ref: list[dict], got: list[dict]) -> None:
    assert len(got) == len(ref)
    for r, g in zip(_steady(ref), _steady(got)):
        assert g.keys() == r.keys(), (r, g)
        assert g == pytest.approx(r, rel=1e-5, abs=1e-6), (r, g)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """64 training and 8 dev conversations of the demo set: 16 steps per epoch at batch 4."""
    from gluekit.tiny import DEMO_DIR

    d = tmp_path_factory.mktemp("data")
    for name, n in (("train.jsonl", 64), ("dev.jsonl", 8)):
        lines = (DEMO_DIR / name).read_text(encoding="utf-8").splitlines(keepends=True)[:n]
        (d / name).write_text("".join(lines), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def runs(small_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    ref_dir, out = base / "reference", base / "interrupted"
    t0 = time.monotonic()
    reference = _start(small_data, ref_dir)  # runs alongside the chain
    steps = {}

    # 1) killed mid-step 13: after backward, before the optimizer step
    steps["step"] = _finish(_start(small_data, out, fault="kill@step:13"))
    steps["step_ckpts"] = [p.name for p in list_checkpoints(out)]

    # 2) resumed, then killed from outside during the evaluation at step 15
    marker = base / "paused"
    proc = _start(small_data, out, "--resume", "latest", fault="pause@eval:15", marker=marker)
    deadline = time.monotonic() + 400
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    steps["paused_at"] = marker.read_text(encoding="utf-8").strip() if marker.exists() else None
    proc.send_signal(signal.SIGKILL)
    steps["eval"] = _finish(proc)
    steps["eval_ckpts"] = [p.name for p in list_checkpoints(out)]

    # 3) resumed, then killed while checkpoint-20 is being written
    steps["save"] = _finish(_start(small_data, out, "--resume", "latest", fault="kill@save:20"))
    steps["save_ckpts"] = [p.name for p in list_checkpoints(out)]
    steps["save_incomplete"] = [(p.name, why) for p, why in incomplete_checkpoints(out)]

    # 4) resumed to the end
    steps["final"] = _finish(_start(small_data, out, "--resume", "latest"))
    steps["reference"] = _finish(reference)
    steps["seconds"] = time.monotonic() - t0
    return ref_dir, out, steps


def test_each_fault_killed_the_run_where_asked(runs):
    _, _, s = runs
    for key in ("step", "eval", "save"):
        assert s[key][0] == -signal.SIGKILL, (key, s[key][2][-2000:])
    assert s["step_ckpts"] == ["checkpoint-10"]  # killed during step 13: nothing after 10 saved
    assert "step   10 | loss" in s["step"][1] and "step   15" not in s["step"][1]
    assert s["paused_at"] == "eval:15"
    assert "resuming from checkpoint-10" in s["eval"][1]
    assert s["eval_ckpts"] == ["checkpoint-10"]
    assert s["save_ckpts"] == ["checkpoint-10"]  # checkpoint-20 exists on disk but is never offered
    assert s["save_incomplete"] == [("checkpoint-20", "no trainer_state.json (the Trainer writes it last, so saving was interrupted)")]


def test_resume_skips_the_half_written_checkpoint(runs):
    _, out, s = runs
    rc, stdout, stderr = s["final"]
    assert rc == 0, stderr[-3000:]
    assert "skipping checkpoint-20: no trainer_state.json" in stdout
    assert "resuming from checkpoint-10" in stdout
    assert "Traceback" not in stderr
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]
    assert incomplete_checkpoints(out) == []
    assert json.loads((out / "run_summary.json").read_text(encoding="utf-8"))["resumed_from"] == "checkpoint-10"


def test_same_adapter_as_the_uninterrupted_run(runs):
    from safetensors.torch import load_file

    ref_dir, out, s = runs
    assert s["reference"][0] == 0, s["reference"][2][-3000:]
    for sub in ("adapter", "checkpoint-30"):
        a = load_file(str(ref_dir / sub / "adapter_model.safetensors"))
        b = load_file(str(out / sub / "adapter_model.safetensors"))
        assert a.keys() == b.keys() and len(a) > 0
        assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6, sub


def test_steps_learning_rates_and_data_order_continue(runs):
    ref_dir, out, _ = runs
    ref, got = _log(ref_dir / "trainer_state.json"), _log(out / "trainer_state.json")
    assert [e["step"] for e in got] == [e["step"] for e in ref]
    assert [e["step"] for e in got if "loss" in e] == [5, 10, 15, 20, 25, 30]  # each once: no gap, no repeat
    assert [e["step"] for e in got if "eval_rouge-1" in e] == [15, 30]
    assert [e["learning_rate"] for e in got if "loss" in e] == [e["learning_rate"] for e in ref if "loss" in e]
    # equal losses at every step = the same batches in the same order (the resume skipped exactly 10 batches)
    _same_records(ref, got)
    state = json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 30 and state["max_steps"] == 30
    for ck in ("checkpoint-10", "checkpoint-20", "checkpoint-30"):
        _same_records(_log(ref_dir / ck / "trainer_state.json"), _log(out / ck / "trainer_state.json"))
    assert (out / "eval_predictions" / "eval-step-15.jsonl").is_file()
    assert (out / "eval_predictions" / "eval-step-30.jsonl").is_file()


def test_weights_are_safetensors_only(runs):
    ref_dir, out, _ = runs
    for folder in (out, ref_dir):
        for sub in ["adapter"] + [p.name for p in list_checkpoints(folder)]:
            assert (folder / sub / "adapter_model.safetensors").is_file()
        # training_args.bin is transformers' record of the arguments (no weights; gluekit never loads it)
        assert {p.name for p in folder.rglob("*.bin")} <= {"training_args.bin"}


def test_chain_takes_modest_time(runs):
    assert runs[2]["seconds"] < 600  # typically well under 3 minutes on an idle 2-core machine


def test_resume_from_a_missing_step_is_a_clear_error(runs, small_data, capsys):
    _, out, _ = runs
    rc = main(["train", str(TINY), "--data-dir", str(small_data), *ARGS, "-o", f"training_args.output_dir={out}",
               "--resume", "25"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert f"resume: {out / 'checkpoint-25'} does not exist or is incomplete (complete checkpoints: checkpoint-10, checkpoint-20, checkpoint-30)." in err


def test_fresh_run_into_a_used_output_dir_is_refused(runs, small_data, capsys):
    _, out, _ = runs
    rc = main(["train", str(TINY), "--data-dir", str(small_data), *ARGS, "-o", f"training_args.output_dir={out}"])
    err = capsys.readouterr().err
    assert rc == 1 and "already holds checkpoint-10, checkpoint-20, checkpoint-30" in err and "--overwrite" in err


# ---------------------------------------------------------------- NaN / inf

def test_nan_loss_stops_training_naming_the_step(small_data, tmp_path, capsys):
    """Through the CLI: the weights turn NaN just before step 5; exit 1, the step, the causes, no traceback."""
    out = tmp_path / "out"
    with extra_callbacks(NanAtStep(5)):
            rc = main(["train", str(TINY), "--data-dir", str(small_data), "-o", "training_args.max_steps=8",
                   "-o", "training_args.logging_steps=1", "-o", "training_args.save_steps=2", "-o", "training_args.eval_strategy=no",
                   "-o", "data_config.test_file=null", "-o", "training_args.log_level=warning",
                   "-o", "training_args.per_device_train_batch_size=4", "-o", f"training_args.output_dir={out}"])
    printed, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    assert err.startswith("gluekit train: 1 training problem(s):\n  - training loss became nan at step 5; "
                          "training stopped before the optimizer applied it."), err
    assert "Likely causes: a learning rate too high" in err and "fp16 on GLM-4" in err
    assert "The last complete checkpoint is checkpoint-4: fix the cause, then resume with --resume latest" in err
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    assert "step    4 | loss" in printed and "step    5" not in printed


def test_huge_learning_rate_stops_training(small_data, tmp_path):
    """lr 1e6 blows the weights up within a few steps: stopped with the step, not trained on as NaN.

    The config check refuses a learning rate >= 1 (keyword arguments included), so the test forces
    1e6 into the optimizer at every step through a callback.
    """
    from train_with import ForceLearningRate

    from gluekit import load_config
    from gluekit.train import train

    cfg = load_config(TINY, ["training_args.max_steps=8", "training_args.logging_steps=1", "training_args.save_strategy=no",
                             "training_args.eval_strategy=no", "data_config.test_file=null", "training_args.log_level=warning",
                             "training_args.per_device_train_batch_size=4", f"training_args.output_dir={tmp_path / 'out'}"],
                      data_dir=small_data)
    with pytest.raises(TrainingError) as e:
        train(cfg, small_data, print_logs=False, callbacks=[ForceLearningRate(1e6)])
    msg = str(e.value)
    assert " became " in msg and "a learning rate too high (1e+06 now;" in msg and "No checkpoint was saved before it." in msg
    step = int(msg.split(" at step ")[1].split(";")[0])
    assert 2 <= step <= 5


# ---------------------------------------------------------------- the command line's last lines of defence

@pytest.mark.parametrize("error,fragment,status", [
    (KeyboardInterrupt(), "gluekit train: interrupted.\n", 130),  # no advice to resume: nothing says there is a checkpoint
    (TrainingInterrupted("training stopped by SIGTERM after step 3 of 9; saved checkpoint-3 in out.", 15),
     "gluekit train: training stopped by SIGTERM after step 3 of 9; saved checkpoint-3 in out.\n", 143),
    (OSError(28, "No space left on device"), "No space left on device. Free some disk space and run the command again", 1),
    ("oom", "out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB). Lower per_device_train_batch_size", 1),
], ids=["ctrl_c", "interrupted_run", "disk_full", "cuda_oom"])
def test_cli_turns_environment_failures_into_messages(monkeypatch, capsys, error, fragment, status):
    import torch

    from gluekit import cli

    if error == "oom":
        error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def boom(args):
        raise error

    monkeypatch.setattr(cli, "cmd_train", boom)
    assert main(["train", str(TINY)]) == status
    err = capsys.readouterr().err
    assert err.startswith("gluekit train: ") and fragment in err and "Traceback" not in err


def test_cli_keeps_tracebacks_for_real_bugs(monkeypatch):
    from gluekit import cli

    def bug(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_train", bug)
    with pytest.raises(ZeroDivisionError):
        main(["train", str(TINY)])


# ---------------------------------------------------------------- stopping on request (issue 13)
#
# The Ctrl-C at step 150 of 400 (no checkpoint yet) and SIGTERM at step 330 (after a
# checkpoint at 200), scaled to the 30 steps above, in one chain of in-process runs that share the
# reference run of ``runs``. The signals are real (``signal.raise_signal`` from a test-only
# callback), delivered mid-step (after backward, before the optimizer step) or mid-evaluation.

OVERRIDES = [a for a in ARGS if a != "-o"]


def _run_chain_step(small_data, out, *callbacks, resume=None):
    """train() in this process, one thread (as the reference subprocess), output captured."""
    import contextlib
    import io

    import torch

    from gluekit.train import train

    threads, printed = torch.get_num_threads(), io.StringIO()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(printed):
            try:
                train(TINY, small_data, resume=resume, overrides=OVERRIDES + [f"training_args.output_dir={out}"],
                      callbacks=list(callbacks))
                return None, printed.getvalue()
            except TrainingInterrupted as e:
                return e, printed.getvalue()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def stopped(runs, small_data, tmp_path_factory, monkeypatch_module):
    import signal as sig

    from checkpoint_files import cut

    out = tmp_path_factory.mktemp("stopped") / "run"
    s = {}
    # 1) Ctrl-C during step 7, before any checkpoint (save_steps 10), then Ctrl-C again while checkpoint-7 is written
    s["twice"] = _run_chain_step(small_data, out, SignalAt(7, again_while_saving=True))
    s["twice_left"] = sorted(p.name for p in out.iterdir())
    # 2) the same command again, as the message says; Ctrl-C once during step 7
    s["once"] = _run_chain_step(small_data, out, SignalAt(7))
    s["once_ckpts"] = [p.name for p in list_checkpoints(out)]
    # 3) resumed; Ctrl-C during the evaluation at step 15
    s["eval"] = _run_chain_step(small_data, out, SignalAt(15, phase="eval"), resume="latest")
    s["eval_ckpts"] = [p.name for p in list_checkpoints(out)]
    # 4) resumed; SIGTERM during step 23, after checkpoint-20
    s["term"] = _run_chain_step(small_data, out, SignalAt(23, sig.SIGTERM), resume="latest")
    s["term_ckpts"] = [p.name for p in list_checkpoints(out)]
    # 5) checkpoint-23's adapter cut short (a copy interrupted); `gluekit check --resume latest`, with
    #    model loading made impossible, then `gluekit train --resume latest` to the end
    cut(out / "checkpoint-23" / "adapter_model.safetensors")
    import gluekit.models

    def no_model(*a, **k):
        raise AssertionError("gluekit check loaded a model")

    monkeypatch_module.setattr(gluekit.models, "load_model", no_model)
    s["check"] = _cli(["check", str(TINY), "--data-dir", str(small_data), *ARGS, "-o", f"training_args.output_dir={out}",
                       "--resume", "latest"])
    monkeypatch_module.undo()
    s["final"] = _cli(["train", str(TINY), "--data-dir", str(small_data), *ARGS, "-o", f"training_args.output_dir={out}",
                       "--resume", "latest"])
    return runs[0], out, s


def _cli(argv):
    import contextlib
    import io

    import torch

    threads, printed, err = torch.get_num_threads(), io.StringIO(), io.StringIO()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(err):
            rc = main(argv)
    finally:
        torch.set_num_threads(threads)
    return rc, printed.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_a_second_ctrl_c_while_saving_stops_at_once_and_leaves_no_half_folder(stopped):
    _, out, s = stopped
    e, printed = s["twice"]
    assert isinstance(e, TrainingInterrupted) and isinstance(e, KeyboardInterrupt)
    assert str(e) == (f"training stopped by SIGINT (Ctrl-C or a kernel interrupt) before any checkpoint was saved in {out}: "
                      "there is nothing to resume from. Run the same command again to start over.")
    assert e.signal_number == 2 and e.checkpoint is None and e.resume_from is None
    assert s["twice_left"] == [".gluekit-run.lock"]  # checkpoint-7 was being written: removed, not left half
    assert "step    5 | loss" in printed


def test_ctrl_c_before_any_checkpoint_saves_the_interrupted_step(stopped):
    _, out, s = stopped
    e, printed = s["once"]
    assert str(e) == (f"training stopped by SIGINT (Ctrl-C or a kernel interrupt) after step 7 of 30; saved checkpoint-7 in "
                      f"{out}. `gluekit train ... --resume latest` (in Python: resume=\"latest\") continues from it.")
    assert e.checkpoint == e.resume_from == out / "checkpoint-7"
    assert s["once_ckpts"] == ["checkpoint-7"]
    state = json.loads((out / "checkpoint-7" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 7 and [r["step"] for r in state["log_history"] if "loss" in r] == [5, 7]
    assert "step    7 | loss" in printed and "step    8" not in printed  # step 7 finished and counted, no step 8


def test_ctrl_c_during_an_evaluation_keeps_its_scores(stopped):
    _, out, s = stopped
    e, printed = s["eval"]
    assert str(e).startswith("training stopped by SIGINT (Ctrl-C or a kernel interrupt) after step 15 of 30; saved checkpoint-15")
    assert s["eval_ckpts"] == ["checkpoint-7", "checkpoint-10", "checkpoint-15"]
    log = _log(out / "checkpoint-15" / "trainer_state.json")
    assert [r["step"] for r in log if "eval_rouge-1" in r] == [15]
    assert "resuming from checkpoint-7" in printed and "step   16" not in printed


def test_sigterm_after_a_checkpoint_saves_the_interrupted_step(stopped):
    _, out, s = stopped
    e, _ = s["term"]
    assert e.signal_number == 15
    assert str(e).startswith(f"training stopped by SIGTERM after step 23 of 30; saved checkpoint-23 in {out}.")
    assert s["term_ckpts"] == ["checkpoint-7", "checkpoint-10", "checkpoint-15", "checkpoint-20", "checkpoint-23"]


def test_check_reports_the_damaged_checkpoint_before_any_model_loads(stopped):
    _, out, s = stopped
    rc, printed, err = s["check"]
    assert rc == 0, err
    size = (out / "checkpoint-23" / "adapter_model.safetensors").stat().st_size
    assert ("resume: skipping checkpoint-23: adapter_model.safetensors is cut off: its header lists 294,912 bytes of "
            f"tensors, the file holds {size - 8 - 3104:,}") in printed
    assert f"resume: --resume latest would start from checkpoint-20 in {out}" in printed


def test_resume_after_the_interrupts_gives_the_uninterrupted_adapter(stopped):
    from safetensors.torch import load_file

    ref_dir, out, s = stopped
    rc, printed, err = s["final"]
    assert rc == 0, err[-3000:]
    assert "skipping checkpoint-23: adapter_model.safetensors is cut off" in printed
    assert "resuming from checkpoint-20" in printed and "Traceback" not in err
    a = load_file(str(ref_dir / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    assert [r["step"] for r in _log(out / "trainer_state.json") if "eval_rouge-1" in r] == [15, 30]


def test_two_runs_one_folder_then_sigterm_from_outside(small_data, tmp_path, capsys):
    """The issue's cases 3 and 1 through the real command line: a second `gluekit train` into the folder
    of a running one is refused (the holder's pid and start time), then SIGTERM from outside, after
    checkpoint-10, ends the first with a checkpoint of its step, exit status 143 and one clear line."""
    from gluekit.runlock import read_record

    out = tmp_path / "out"
    proc = _start(small_data, out)
    seen, steps = [], 0
    for line in proc.stdout:  # LogPrinter's lines, every 5 steps
        seen.append(line)
        if line.startswith("step   10 | loss"):
            break
    record = read_record(out)
    rc = main(["train", str(TINY), "--data-dir", str(small_data), *ARGS, "-o", f"training_args.output_dir={out}",
               "--resume", "latest"])
    err = capsys.readouterr().err
    proc.send_signal(signal.SIGTERM)
    rest, stderr = proc.communicate(timeout=300)
    assert rc == 1 and record["pid"] == proc.pid
    assert err == (f"gluekit train: 1 training problem(s):\n  - `training_args.output_dir`: {out} is in use by another run "
                   f"(pid {proc.pid} on host {record['host']}, started {record['started']}). Wait for it to finish or stop it, "
                   "or pick another output_dir.\n")
    assert proc.returncode == 143, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    steps = int(last.split(" after step ")[1].split(" ")[0])
    assert last == (f"gluekit train: training stopped by SIGTERM after step {steps} of 30; saved checkpoint-{steps} in {out}. "
                    "`gluekit train ... --resume latest` (in Python: resume=\"latest\") continues from it.")
    assert 10 <= steps < 30 and "Traceback" not in stderr
    assert [p.name for p in list_checkpoints(out)][-1] == f"checkpoint-{steps}"
    assert "checkpoint-10" in [p.name for p in list_checkpoints(out)] or steps == 10
    assert read_record(out) is None  # released on the way out
