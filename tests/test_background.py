"""BackgroundTraining: a run in a thread that ends with a result or a one-line error; StopFlag stops it
through the Trainer's own control flag. (tests/test_viz_panel.py stops a real run through the panel.)"""
from types import SimpleNamespace

import pytest

from gluekit.background import BackgroundTraining, StopFlag
from gluekit.errors import GluekitError


def test_stop_flag_sets_the_trainers_stop_control_once_asked():
    flag, control = StopFlag(), SimpleNamespace(should_training_stop=False)
    flag.on_step_end(None, SimpleNamespace(global_step=3), control)
    assert control.should_training_stop is False and flag.stopped_at is None
    flag.event.set()
    flag.on_step_end(None, SimpleNamespace(global_step=4), control)
    assert control.should_training_stop is True and flag.stopped_at == 4


def test_an_input_error_ends_the_thread_with_its_message(tmp_path, configs, demo_dir):
    out = tmp_path / "run"
    (out / "checkpoint-5").mkdir(parents=True)
    done = []
    run = BackgroundTraining(f"{configs}/tiny.yaml", demo_dir, overrides=[f"training_args.output_dir={out}"],
                             on_done=done.append).start()
    assert run.join(timeout=300)
    assert done == [run] and run.result is None and run.traceback is None
    assert "(checkpoint-5). Pick another output_dir, or pass --overwrite" in run.error
    with pytest.raises(GluekitError, match="started already"):
        run.start()
