"""report_to: tensorboard writes event files the TensorBoard reader can load (loss and learning rate)."""
import subprocess
import sys

import pytest


def test_report_to_tensorboard_writes_loss_events(tmp_path, configs):
    pytest.importorskip("tensorboard", reason="pip install tensorboard (in the test extra)")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gluekit", "train", f"{configs}/tiny.yaml", "--overwrite",
           "-o", "training_args.max_steps=4", "-o", "training_args.logging_steps=2",
           "-o", "training_args.report_to=tensorboard", "-o", f"training_args.output_dir={out}",
           "-o", "training_args.eval_strategy=no", "-o", "data_config.test_file=null",
           "-o", "training_args.log_level=warning"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    events = list(out.glob("runs/*/events.out.tfevents.*"))
    assert len(events) == 1, list(out.rglob("*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and "train/learning_rate" in tags, tags
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4]
