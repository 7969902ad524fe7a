"""The output folder without training: complete, half-written and damaged checkpoints, resume
requests, what a fresh run refuses, and the training log."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from checkpoint_files import cut, write_checkpoint  # tests/checkpoint_files.py: real file formats, tiny tensors

from gluekit.checkpoints import (
    RESUME_FRESH, RESUME_LATEST, checkpoint_problem, incomplete_checkpoints, list_checkpoints, resolve_resume,
    resume_point, resume_request, run_outputs, safetensors_problem, torch_file_problem, training_log,
)
from gluekit.errors import TrainingError


def _fake_checkpoint(folder: Path, step: int, state: str | None = None) -> Path:
    return write_checkpoint(folder, step, state=state)


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
    ck = write_checkpoint(tmp_path, 7, state="{}")
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


# ---------------------------------------------------------------- every file a resume loads, checked

def test_each_damaged_file_is_named_with_its_reason(tmp_path):
    """Weights, optimizer, scheduler and RNG state: present and whole, else the checkpoint is skipped."""
    cut(write_checkpoint(tmp_path, 1) / "adapter_model.safetensors", 0.6)  # a copy cut short (the case)
    (write_checkpoint(tmp_path, 2) / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00")  # cut inside the header length
    cut(write_checkpoint(tmp_path, 3) / "optimizer.pt", 0.9)
    write_checkpoint(tmp_path, 4, optimizer=False)  # save_only_model: true
    write_checkpoint(tmp_path, 5, scheduler=False)
    write_checkpoint(tmp_path, 6, rng=False)
    write_checkpoint(tmp_path, 7, weights=False)
    (write_checkpoint(tmp_path, 8) / "rng_state.pth").write_bytes(b"not a zip at all")
    good = write_checkpoint(tmp_path, 9)
    size = (good / "adapter_model.safetensors").stat().st_size
    reasons = {p.name: why for p, why in incomplete_checkpoints(tmp_path)}
    assert reasons["checkpoint-1"] == (f"adapter_model.safetensors is cut off: its header lists 256 bytes of tensors, "
                                       f"the file holds {int(size * 0.6) - (size - 256):,}")
    assert reasons["checkpoint-2"] == "adapter_model.safetensors is cut off (3 bytes, shorter than the header it announces)"
    assert reasons["checkpoint-3"].startswith("optimizer.pt is cut off or damaged (")
    assert reasons["checkpoint-3"].endswith("bytes, no zip directory at its end, which torch.save writes last)")
    assert reasons["checkpoint-4"] == ("no optimizer.pt (saved with save_only_model: true, or deleted): resuming would "
                                       "start a fresh optimizer")
    assert reasons["checkpoint-5"] == "no scheduler.pt (deleted, or not saved)"
    assert reasons["checkpoint-6"] == ("no rng_state.pth (deleted, or not saved): the resumed run would draw different "
                                       "random numbers")
    assert reasons["checkpoint-7"] == "no weights file (adapter_model.safetensors or model.safetensors)"
    assert reasons["checkpoint-8"].startswith("rng_state.pth is cut off or damaged (16 bytes")
    assert list_checkpoints(tmp_path) == [good]
    point = resume_point(tmp_path, "latest")
    assert point.checkpoint == good and point.skipped == []
    with pytest.raises(TrainingError, match=r"resume: .*checkpoint-1 is incomplete: adapter_model.safetensors is cut off"):
        resume_point(tmp_path, 1)


def test_latest_skips_damaged_checkpoints_newest_first_and_says_why(tmp_path):
    older = write_checkpoint(tmp_path, 10)
    size = cut(write_checkpoint(tmp_path, 20) / "adapter_model.safetensors").stat().st_size
    write_checkpoint(tmp_path, 30, state=None)
    point = resume_point(tmp_path, "latest")
    assert point.checkpoint == older
    header = size * 2 - 256  # 8 + header length + 256 bytes of tensors, cut to half
    assert point.lines() == [
        "skipping checkpoint-30: no trainer_state.json (the Trainer writes it last, so saving was interrupted)",
        f"skipping checkpoint-20: adapter_model.safetensors is cut off: its header lists 256 bytes of tensors, the file holds {size - header}"]


def test_no_complete_checkpoint_left_is_a_clear_error_not_a_fresh_start(tmp_path):
    cut(write_checkpoint(tmp_path, 10) / "optimizer.pt")
    cut(write_checkpoint(tmp_path, 20) / "adapter_model.safetensors")
    with pytest.raises(TrainingError) as e:
        resume_point(tmp_path, "latest")
    msg = e.value.problems[0]
    assert msg.startswith(f"resume: no complete checkpoint left in {tmp_path} (checkpoint-20: adapter_model.safetensors is cut off")
    assert "; checkpoint-10: optimizer.pt is cut off or damaged" in msg
    assert msg.endswith("Start over with --overwrite (overwrite=True), which deletes them, or put back a whole copy of one.")


def test_the_deep_check_loads_torch_files_as_the_trainer_does(tmp_path):
    """A zip that torch.save did not write (an arbitrary pickle) passes the cheap check, never the deep one."""
    import zipfile

    ck = write_checkpoint(tmp_path, 5)
    with zipfile.ZipFile(ck / "scheduler.pt", "w") as z:  # a whole zip, but its pickle calls os.system
        z.writestr("archive/data.pkl", b"cos\nsystem\n(S'echo hi'\ntR.")
    assert torch_file_problem(ck / "scheduler.pt") is None and checkpoint_problem(ck) is None
    why = checkpoint_problem(ck, deep=True)
    assert why.startswith("scheduler.pt does not load with torch.load(weights_only=True): ")
    assert torch_file_problem(ck / "rng_state.pth", deep=True) is None  # numpy's RNG state: allowed, as the Trainer allows it
    with pytest.raises(TrainingError, match="no complete checkpoint left .*scheduler.pt does not load"):
        resume_point(tmp_path, "latest")  # train() and `gluekit check --resume` check deep
    assert resolve_resume(tmp_path, "latest") == ck  # the cheap check alone


def test_sharded_full_model_weights(tmp_path):
    import torch
    from safetensors.torch import save_file

    ck = write_checkpoint(tmp_path, 3, weights=False)
    save_file({"a": torch.ones(3)}, str(ck / "model-00001-of-00002.safetensors"))
    save_file({"b": torch.ones(3)}, str(ck / "model-00002-of-00002.safetensors"))
    (ck / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    assert checkpoint_problem(ck) is None
    cut(ck / "model-00002-of-00002.safetensors", 0.9)
    assert checkpoint_problem(ck).startswith("model-00002-of-00002.safetensors is cut off: its header lists 12 bytes")
    (ck / "model-00002-of-00002.safetensors").unlink()
    assert checkpoint_problem(ck) == "model-00002-of-00002.safetensors (listed in model.safetensors.index.json) is missing"
    garbled = ck / "model-00001-of-00002.safetensors"
    garbled.write_bytes((4).to_bytes(8, "little") + b"\xff\xfe{]" + b"\0" * 12)  # a whole length, a header that is not JSON
    assert safetensors_problem(garbled) == ("model-00001-of-00002.safetensors has no readable safetensors header "
                                            "(damaged, or not a safetensors file)")


def test_listing_reads_headers_not_tensors(tmp_path, monkeypatch):
    """list_checkpoints never reads a tensor: a checkpoint whose tensors are a 1 GB hole costs what a tiny one does."""
    import builtins
    import time

    ck = write_checkpoint(tmp_path, 1)
    big = ck / "adapter_model.safetensors"
    meta = {"lora_A.weight": {"dtype": "F32", "shape": [2 ** 28], "data_offsets": [0, 2 ** 30]}}
    text = json.dumps(meta).encode()
    n = len(text)
    with open(big, "wb") as f:  # a sparse file: 1 GB long, no tensor byte written
        f.write(n.to_bytes(8, "little") + text)
        f.truncate(8 + n + 2 ** 30)
    reads = []
    real_open = builtins.open

    def counting_open(file, mode="r", *a, **kw):
        f = real_open(file, mode, *a, **kw)
        if "b" in mode and str(file).endswith(".safetensors"):
            real_read = f.read
            f.read = lambda size=-1: reads.append(size) or real_read(size)
        return f

    monkeypatch.setattr(builtins, "open", counting_open)
    t0 = time.perf_counter()
    assert list_checkpoints(tmp_path) == [ck]
    assert time.perf_counter() - t0 < 1.0
    assert reads == [8, n]  # the length, then the header: never the tensors
