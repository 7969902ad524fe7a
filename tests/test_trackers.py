"""report_to: the package each tracker needs (a problem for `gluekit check`, a note when only planning), and
swanlab >= 0.8 through its own callback (transformers' integration crashes with it). tensorboard's run:
tests/test_tensorboard.py."""
import os
import subprocess
import sys

import pytest
from transformers import TrainingArguments

from gluekit.config import load_config
from gluekit.errors import ConfigError
from gluekit.trackers import TRACKERS, installed_version, missing, missing_message, named, tracker_callbacks


def test_named_and_missing():
    assert named("none") == [] and named("all") == [] and named(["tensorboard", "none"]) == ["tensorboard"]
    assert named("wandb") == ["wandb"]
    absent = [n for n in TRACKERS if installed_version(TRACKERS[n].package) is None]
    assert missing(["none"]) == [] and missing(list(TRACKERS)) == absent
    if installed_version("tensorboard"):
        assert "tensorboard" not in missing("tensorboard")


def test_a_missing_tracker_package_is_a_problem_for_check_and_a_note_for_plan(configs):
    absent = [n for n in ("wandb", "mlflow", "trackio", "swanlab") if installed_version(n) is None]
    if not absent:
        pytest.skip("every tracker package is installed here")
    name = absent[0]
    with pytest.raises(ConfigError) as e:
        load_config(f"{configs}/tiny.yaml", [f"training_args.report_to={name}"], check_machine=True)
    line = [p for p in e.value.problems if "report_to" in p]
    assert len(line) == 1 and line[0].endswith(
        f"`training_args.report_to`: names {name}, whose package is not installed here, got '{name}'. "
        f"Run `pip install {name}`, or remove it from report_to. Offline: {TRACKERS[name].offline}."), line
    cfg = load_config(f"{configs}/tiny.yaml", [f"training_args.report_to=[tensorboard, {name}]"])
    assert f"training_args.report_to {missing_message(name)} (`gluekit check` reports it as a problem)." in cfg.notes
    # a name transformers does not know stays the unknown-integration problem, not a missing package
    with pytest.raises(ConfigError) as e:
        load_config(f"{configs}/tiny.yaml", ["training_args.report_to=swanlabb"], check_machine=True)
    assert [p for p in e.value.problems if "report_to" in p][0].split("`: ")[1].startswith("unknown logging integration 'swanlabb'. Did you mean `swanlab`?")


def test_tracker_callbacks_leave_other_trackers_to_the_trainer(tmp_path):
    args = TrainingArguments(str(tmp_path), report_to=["tensorboard"])
    assert tracker_callbacks(args) == [] and args.report_to == ["tensorboard"]


def test_swanlab_runs_offline_through_its_own_callback(tmp_path, configs):
    """A 4-step run with report_to=swanlab, SWANLAB_MODE=offline: swanlab's run files are written, no network.
    Skipped where swanlab is not installed (it is not in the lock: it moves protobuf; `pip install swanlab`)."""
    pytest.importorskip("swanlab", reason="pip install swanlab (not in the lock: it needs protobuf<7)")
    from packaging.version import Version

    args = TrainingArguments(str(tmp_path), report_to=["swanlab", "tensorboard"])
    cbs = tracker_callbacks(args)
    if Version(installed_version("swanlab")) >= Version("0.8"):
        assert [type(c).__name__ for c in cbs] == ["SwanLabCallback"] and args.report_to == ["tensorboard"]
    else:
        assert cbs == [] and args.report_to == ["swanlab", "tensorboard"]
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gluekit", "train", f"{configs}/tiny.yaml", "--overwrite",
           "-o", "training_args.max_steps=4", "-o", "training_args.logging_steps=2",
           "-o", "training_args.report_to=swanlab", "-o", f"training_args.output_dir={out}",
           "-o", "training_args.eval_strategy=no", "-o", "data_config.test_file=null",
           "-o", "training_args.log_level=warning"]
    env = dict(os.environ, SWANLAB_MODE="offline", SWANLAB_LOG_DIR=str(tmp_path / "swanlog"),
               SWANLAB_SAVE_DIR=str(tmp_path / "swanlab-home"), HOME=str(tmp_path / "home"))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list((tmp_path / "swanlog").glob("run-*"))
    assert len(runs) == 1, list(tmp_path.rglob("*"))[:50]
    assert list(runs[0].glob("*.swanlab")), sorted(p.name for p in runs[0].rglob("*"))
