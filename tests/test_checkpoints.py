"""The output folder without training: complete and half-written checkpoints, resume requests,
what a fresh run refuses, and the training log."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gluekit.checkpoints import (
    RESUME_FRESH, RESUME_LATEST, checkpoint_problem, incomplete_checkpoints, list_checkpoints, resolve_resume,
    resume_request, run_outputs, training_log,
)
from gluekit.errors import TrainingError


def _fake_checkpoint(folder: Path, step: int, state: str | None = None) -> Path:
    ck = folder / f"checkpoint-{step}"
    ck.mkdir(parents=True)
    (ck / "adapter_model.safetensors").write_bytes(b"")
    if state is not None:
        (ck / "trainer_state.json").write_text(state, encoding="utf-8")
    return ck


def test_incomplete_checkpoints_are_never_resumed(tmp_path):
    good = _fake_checkpoint(tmp_path, 10, '{"global_step": 10, "log_history": []}')
    _fake_checkpoint(tmp_path, 20, '{"global_step": 20, "log_hi')  # killed while writing the state
    _fake_checkpoint(tmp_path, 30, '{"global_step": 20}')  # a state copied from elsewhere
    _fake_checkpoint(tmp_path, 40, "[]")
    _fake_checkpoint(tmp_path, 50)  # killed before the state
    assert list_checkpoints(tmp_path) == [good]
    assert resolve_resume(tmp_path, "latest") == good
    reasons = dict((p.name, why) for p, why in incomplete_checkpoints(tmp_path))
    assert reasons == {
        "checkpoint-20": "trainer_state.json is cut off or unreadable (saving was interrupted)",
        "checkpoint-30": "trainer_state.json is for step 20, not 30",
        "checkpoint-40": "trainer_state.json does not hold a Trainer state",
        "checkpoint-50": "no trainer_state.json (the Trainer writes it last, so saving was interrupted)",
    }
    with pytest.raises(TrainingError, match=r"checkpoint-20 is incomplete: trainer_state.json is cut off .*complete checkpoints: checkpoint-10"):
        resolve_resume(tmp_path, 20)
    assert checkpoint_problem(good) is None


def test_resume_words_and_absent_output_dir(tmp_path):
    absent = tmp_path / "absent"
    assert resolve_resume(absent, "latest") is None and resolve_resume(absent, True) is None
    assert resolve_resume(absent, None) is None and resolve_resume(absent, "no") is None
    assert not absent.exists()
    with pytest.raises(TrainingError, match="checkpoint-5 does not exist or is incomplete \\(complete checkpoints: none\\)"):
        resolve_resume(absent, 5)
    with pytest.raises(TrainingError, match="'later' is not understood. Use latest, a step number, or no."):
        resolve_resume(absent, "later")


def test_fresh_run_refuses_any_earlier_results_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    (out / "adapter").mkdir(parents=True)  # a finished run without checkpoints (save_strategy: no)
    (out / "run_summary.json").write_text("{}")
    (out / "notes.txt").write_text("mine")  # not a run output: never counted, never deleted
    _fake_checkpoint(out, 20)  # half-written
    with pytest.raises(TrainingError, match=r"already holds an earlier run's results \(checkpoint-20, adapter, run_summary.json\)"):
        resolve_resume(out, None)
    assert [p.name for p in run_outputs(out)] == ["checkpoint-20", "adapter", "run_summary.json"]
    assert resolve_resume(out, None, overwrite=True) is None
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert resolve_resume(out, None) is None  # unrelated files do not block a fresh run


def test_resume_words(tmp_path):
    assert resolve_resume(tmp_path / "absent", "latest") is None
    assert resolve_resume(tmp_path / "absent", None) is None
    ck = tmp_path / "checkpoint-7"
    ck.mkdir()
    (ck / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-9").mkdir()  # no trainer_state.json: incomplete, never picked
    assert resolve_resume(tmp_path, "yes") == ck
    assert resolve_resume(tmp_path, "7") == ck
    with pytest.raises(TrainingError, match="checkpoint-9 is incomplete: no trainer_state.json"):
        resolve_resume(tmp_path, 9)
    with pytest.raises(TrainingError, match="checkpoint-11 does not exist or is incomplete"):
        resolve_resume(tmp_path, 11)
    with pytest.raises(TrainingError, match="already holds checkpoint-7"):
        resolve_resume(tmp_path, "no")
    assert resolve_resume(tmp_path, "no", overwrite=True) is None and not ck.exists()


@pytest.mark.parametrize("given,meaning", [
    (None, None), (False, None), ("no", None), (" Fresh ", None), ("", None), ("none", None),
    (True, "latest"), ("yes", "latest"), ("LATEST", "latest"), ("auto", "latest"),
    (20, 20), ("20", 20), (" 7 ", 7), (0, 0),
])
def test_one_reading_of_the_resume_words(given, meaning):
    assert resume_request(given) == meaning


def test_every_resume_word_is_read_and_nothing_else():
    assert {resume_request(w) for w in RESUME_FRESH} == {None}
    assert {resume_request(w) for w in RESUME_LATEST} == {"latest"}
    for word in ("later", "-1", "1.5", "yes please"):
        with pytest.raises(TrainingError, match=f"resume: {word!r} is not understood. Use latest, a step number, or no."):
            resume_request(word)


def test_training_log_prefers_the_finished_run_then_the_newest_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trainer_state.json in .* or its checkpoints."):
        training_log(tmp_path)
    for step in (5, 10):
        _fake_checkpoint(tmp_path, step, json.dumps({"global_step": step, "log_history": [{"step": step}]}))
    _fake_checkpoint(tmp_path, 15, '{"global_step": 15, "log_hi')  # half-written: never read
    assert training_log(tmp_path) == [{"step": 10}]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 12}]}), encoding="utf-8")
    assert training_log(tmp_path) == [{"step": 12}]


def test_looking_at_a_run_loads_no_torch():
    """The folder and the recipe's module import without torch or transformers (only a run loads them)."""
    import subprocess
    import sys

    code = ("import sys, gluekit.checkpoints, gluekit.train, gluekit.fileio; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules)); "
            "import gluekit.trainer; print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "True"]  # gluekit.trainer imports transformers at its top, by design
