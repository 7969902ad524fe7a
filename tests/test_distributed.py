"""Data parallelism with torchrun on 2 CPU processes (gloo), compared with one process.

The 2-process run is ``gluekit train`` with the test-only ``checksum`` probe (tests/train_with.py),
which prints every rank's sum of |trainable weights| when training ends.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_WITH = os.path.join(ROOT, "tests", "train_with.py")
COMMON = ["-o", "training_args.train_sampling_strategy=sequential", "-o", "training_args.max_steps=-1",
          "-o", "training_args.num_train_epochs=1", "-o", "training_args.save_steps=4", "-o", "training_args.eval_steps=8",
          "-o", "training_args.log_level=warning", "-o", "training_args.logging_steps=2"]


def run(cmd, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_dir):
    tmp = tmp_path_factory.mktemp("ddp")
    (tmp / "data").mkdir()
    for name, n in (("train.jsonl", 64), ("dev.jsonl", 8)):
        lines = (demo_dir / name).read_text(encoding="utf-8").splitlines()[:n]
        (tmp / "data" / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = os.path.join(ROOT, "configs", "tiny.yaml")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    out = {}
    out["ddp"] = run(torchrun + [TRAIN_WITH, "checksum", "--", "train", cfg, "--data-dir", "data", *COMMON,
                                 "-o", "training_args.per_device_train_batch_size=4", "-o", "training_args.output_dir=ddp"], tmp)
    out["one_b8"] = run([sys.executable, "-m", "gluekit", "train", cfg, "--data-dir", "data", *COMMON,
                         "-o", "training_args.per_device_train_batch_size=8", "-o", "training_args.output_dir=one_b8"], tmp)
    out["one_b4"] = run([sys.executable, "-m", "gluekit", "train", cfg, "--data-dir", "data", *COMMON,
                         "-o", "training_args.per_device_train_batch_size=4", "-o", "training_args.output_dir=one_b4"], tmp)
    return tmp, out


def state(tmp, name):
    return json.loads((tmp / name / "trainer_state.json").read_text(encoding="utf-8"))


def test_ranks_stay_in_sync(runs):
    tmp, out = runs
    sums = {}
    for line in out["ddp"].stdout.splitlines():
        if " adapter checksum " in line:
            rank, value = line.split(" adapter checksum ")
            sums[rank] = float(value)
    assert sorted(sums) == ["rank 0", "rank 1"], out["ddp"].stdout[-2000:]
    assert sums["rank 0"] > 0 and abs(sums["rank 0"] - sums["rank 1"]) <= 1e-6 * sums["rank 0"]
    summary = json.loads((tmp / "ddp" / "run_summary.json").read_text(encoding="utf-8"))
    assert summary["world_size"] == 2 and set(summary) == {"train", "test", "lengths", "resumed_from", "world_size"}


def test_two_processes_halve_the_steps_per_epoch(runs):
    tmp, _ = runs
    assert state(tmp, "one_b4")["max_steps"] == 16
    assert state(tmp, "ddp")["max_steps"] == 8 == state(tmp, "one_b8")["max_steps"]


def test_matches_one_process_with_twice_the_batch(runs):
    from safetensors.torch import load_file

    tmp, _ = runs
    a = load_file(str(tmp / "ddp" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp / "one_b8" / "adapter" / "adapter_model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-3
    la = [round(e["loss"], 3) for e in state(tmp, "ddp")["log_history"] if "loss" in e]
    lb = [round(e["loss"], 3) for e in state(tmp, "one_b8")["log_history"] if "loss" in e]
    assert la == pytest.approx(lb, abs=2e-3)


def test_only_rank_zero_writes(runs):
    tmp, out = runs
    assert sorted(p.name for p in (tmp / "ddp").iterdir()) == sorted(p.name for p in (tmp / "one_b8").iterdir())
    preds = sorted(p.name for p in (tmp / "ddp" / "eval_predictions").iterdir())
    assert preds == ["eval-step-8.jsonl", "test-step-8.jsonl"]
    assert out["ddp"].stdout.count("adapter saved to") == 1
    evals = [e for e in state(tmp, "ddp")["log_history"] if "eval_samples" in e]
    assert evals[0]["eval_samples"] == 14  # every dev reply, split across the 2 ranks and gathered
    shutil.rmtree(tmp)


@pytest.mark.parametrize("outcome", ["trained", "input error", "bug"])
def test_a_rank_leaves_without_python_teardown(tmp_path, monkeypatch, capsys, outcome):
    # Tearing down gloo's process group with the GIL held can hang a rank after a complete run, or
    # abort it (SIGABRT); under torchrun `gluekit train` exits with os._exit instead, whatever happened.
    import torch.distributed as dist

    from gluekit import cli, train as train_mod
    from gluekit.errors import GluekitError

    class Result:
        adapter_dir, test_metrics = "out/adapter", {}

        class trainer:
            is_world_process_zero = staticmethod(lambda: True)

    def fake_train(*args, **kwargs):
        assert dist.is_initialized()
        if outcome == "input error":
            raise GluekitError("`training_args.max_steps`: must be > 0")
        if outcome == "bug":
            raise RuntimeError("boom")
        return Result

    class Left(Exception):
        pass

    def fake_exit(rc):
        raise Left(rc)

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        monkeypatch.setattr(train_mod, "train", fake_train)
        monkeypatch.setattr(cli.os, "_exit", fake_exit)
        with pytest.raises(Left) as left:
            cli.main(["train", "cfg.yaml"])
    finally:
        dist.destroy_process_group()  # one process, no DDP, no pending work: safe here
    assert left.value.args[0] == {"trained": 0, "input error": 1, "bug": 1}[outcome]
    out, err = capsys.readouterr()
    assert {"trained": "adapter saved to out/adapter" in out, "input error": "max_steps`: must be > 0" in err,
            "bug": "RuntimeError: boom" in err}[outcome]
    assert cli.main(["plan", "nonexistent.yaml"]) == 1  # outside a process group: ordinary return codes
