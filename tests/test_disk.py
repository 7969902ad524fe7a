"""gluekit.disk: the bytes a run writes, checked against a real tiny run's files, and a full disk during
a save (simulated through the same code path: tests/train_with.py's DiskFull raises, at the real write,
exactly what a full disk raises there) ending in one line with nothing half-written left behind.

One chain of short in-process runs (6 steps, a checkpoint every 2) serves every test here."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from gluekit.checkpoints import list_checkpoints
from gluekit.cli import main
from gluekit.disk import DiskPlan, human, is_disk_full
from gluekit.errors import DiskFullError
from train_with import DiskFull, enospc_oserror, enospc_safetensors, enospc_torch_save

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "tiny.yaml"
OVERRIDES = ["training_args.max_steps=6", "training_args.save_steps=2", "training_args.eval_strategy=no",
             "training_args.logging_steps=2", "training_args.log_level=warning", "training_args.per_device_train_batch_size=4",
             "data_config.test_file=null"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from gluekit.tiny import DEMO_DIR

    d = tmp_path_factory.mktemp("data")
    for name, n in (("train.jsonl", 24), ("dev.jsonl", 4)):
        lines = (DEMO_DIR / name).read_text(encoding="utf-8").splitlines(keepends=True)[:n]
        (d / name).write_text("".join(lines), encoding="utf-8")
    return d


def _train(data, out, resume=None):
    from gluekit.train import train

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        try:
            train(TINY, data, resume=resume, overrides=OVERRIDES + [f"training_args.output_dir={out}"])
            return None, printed.getvalue()
        except DiskFullError as e:
            return e, printed.getvalue()


def _cli(argv):
    printed, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, printed.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def full(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("disk") / "run"
    s = {}
    with DiskFull("checkpoint-4") as disk:  # the disk fills up while checkpoint-4's optimizer.pt is written
        s["ckpt"] = _train(data, out)
        s["ckpt_full"] = disk.full
    s["ckpt_left"] = sorted(p.name for p in out.iterdir())
    with DiskFull("adapter") as disk:  # space freed; resumed; full again when the final adapter is written
        s["adapter"] = _train(data, out, resume="latest")
    s["adapter_left"] = sorted(p.name for p in out.iterdir())
    s["final"] = _train(data, out, resume="latest")  # space freed again: as the message says
    return out, s


def test_a_full_disk_during_a_checkpoint_says_so_in_one_line_and_removes_the_half_folder(full):
    out, s = full
    e, _ = s["ckpt"]
    assert s["ckpt_full"] and isinstance(e, DiskFullError)
    assert s["ckpt_left"] == [".gluekit-run.lock", "checkpoint-2"]  # no checkpoint-4 left to be resumed from
    text = str(e)
    assert "\n" not in text
    assert text.startswith(f"disk full while saving checkpoint-4 in {out}: it needs about ")
    needed = text.split("it needs about ")[1].split(",")[0]
    assert text.endswith(f", {human(3 * 2 ** 20 // 10)} free there. The partial checkpoint-4 was removed. The last complete "
                         "checkpoint is checkpoint-2: free space (or lower save_total_limit, or pick another output_dir), "
                         "then `gluekit train ... --resume latest` (resume=\"latest\") continues from it.")
    assert needed.endswith(("kB", "MB")) and float(needed.split()[0]) > 0


def test_a_full_disk_while_writing_the_adapter_keeps_the_checkpoints_and_no_half_adapter(full):
    out, s = full
    e, printed = s["adapter"]
    assert "resuming from checkpoint-2" in printed
    assert s["adapter_left"] == [".gluekit-run.lock", "checkpoint-2", "checkpoint-4", "checkpoint-6",
                                 "trainer_state.json"]  # no adapter, no adapter.partial
    assert str(e).startswith(f"disk full while saving the adapter in {out}: it needs about ")
    assert str(e).endswith("The partial adapter.partial was removed. The last complete checkpoint is checkpoint-6 "
                           "(training had finished: resuming from it only writes what is missing): free space (or lower "
                           "save_total_limit, or pick another output_dir), then `gluekit train ... --resume latest` "
                           "(resume=\"latest\") continues from it.")


def test_resuming_after_the_full_disks_finishes_the_run(full):
    out, s = full
    e, printed = s["final"]
    assert e is None and "resuming from checkpoint-6" in printed
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6


def test_the_estimate_matches_the_bytes_of_a_real_checkpoint(full, data):
    """`gluekit plan --json` (no weights loaded) against the files of checkpoint-2 and the final adapter."""
    out, _ = full
    rc, printed, err = _cli(["plan", str(TINY), "--data-dir", str(data), "--json",
                             *[a for o in OVERRIDES for a in ("-o", o)], "-o", f"training_args.output_dir={out}"])
    assert rc == 0, err
    d = json.loads(printed)["disk"]
    ck = out / "checkpoint-2"
    size = {p.name: p.stat().st_size for p in ck.iterdir()}
    real = {"weights": size["adapter_model.safetensors"], "optimizer": size["optimizer.pt"],
            "scheduler": size["scheduler.pt"], "rng": size["rng_state.pth"]}
    for part, n in real.items():  # torch.save's zip entries and names (not counted): ~3% of a tiny optimizer.pt, ~80 bytes
        assert d["checkpoint"][part] == pytest.approx(n, rel=0.05, abs=256), (part, d["checkpoint"][part], n)
    whole = sum(size.values())
    assert d["checkpoint_bytes"] == pytest.approx(whole, rel=0.03)
    adapter = sum(p.stat().st_size for p in (out / "adapter").iterdir())
    assert d["final_bytes"] == pytest.approx(adapter, rel=0.03)
    assert d["saves"] == 3 and d["save_total_limit"] is None and d["at_once"] == 3
    assert d["needed"] == 3 * d["checkpoint_bytes"] + d["final_bytes"] and d["fits"] is True


def test_check_refuses_a_run_that_will_not_fit(data, tmp_path, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(real(p).total, real(p).used, 10 ** 6))
    out = tmp_path / "run"
    rc, printed, err = _cli(["check", str(TINY), "--data-dir", str(data), *[a for o in OVERRIDES for a in ("-o", o)],
                             "-o", f"training_args.output_dir={out}", "-o", "training_args.save_total_limit=2"])
    assert rc == 1
    assert "disk: each checkpoint " in printed and "will NOT fit" in printed
    assert f"`training_args.output_dir`: {out} needs about " in err
    assert "3 checkpoint(s) of " in err and ("save_total_limit 2, and the final adapter, " in err)
    assert err.rstrip().endswith("got 1 MB free on its disk. Free space, set save_total_limit (e.g. 2), or pick another "
                                 "output_dir.")


def test_full_sft_of_glm4_9b_is_about_56_gb_per_checkpoint_and_lora_tens_of_mb():
    """Counted from the model's shape (no weights, no download): `gluekit plan --model glm-4-9b`. sft.yaml
    without DeepSpeed (bf16 weights, AdamW's two bf16 moments: 6 bytes a parameter), then with its ZeRO-3
    (fp32 master weights and moments, 12 bytes a parameter, beside the bf16 module: 16 bytes in all)."""
    sft = REPO / "configs" / "sft.yaml"
    lora = REPO / "configs" / "lora.yaml"
    got = {}
    for name, cfg, extra in (("sft", sft, ["-o", "training_args.deepspeed=null"]), ("zero3", sft, []), ("lora", lora, [])):
        rc, printed, err = _cli(["plan", str(cfg), "--model", "glm-4-9b", "--json", "--samples", "1000", *extra])
        assert rc == 0, err
        got[name] = json.loads(printed)["disk"]
    sft_ck, z3 = got["sft"]["checkpoint"], got["zero3"]["checkpoint"]
    assert 54e9 < sft_ck["weights"] + sft_ck["optimizer"] < 58e9 and sft_ck["optimizer"] == 2 * sft_ck["weights"]
    assert z3["optimizer"] == pytest.approx(7 * z3["weights"], rel=0.01) and 145e9 < z3["weights"] + z3["optimizer"] < 155e9
    assert 10e6 < got["lora"]["checkpoint_bytes"] < 100e6


def test_what_counts_as_a_full_disk(tmp_path):
    assert is_disk_full(enospc_oserror(), tmp_path)
    assert is_disk_full(enospc_safetensors(), tmp_path)
    assert not is_disk_full(enospc_torch_save(), tmp_path, needed=1000)  # plenty free: a torch writer error, not the disk
    assert is_disk_full(enospc_torch_save(), tmp_path, needed=10 ** 18)
    assert not is_disk_full(OSError(13, "Permission denied"), tmp_path)


def test_rotation_peak_counts_the_checkpoint_written_before_the_oldest_goes():
    plan = DiskPlan(Path("out"), {"weights": 100}, {"weights": 10}, saves=5, limit=2, free=299)
    assert plan.at_once == 3 and plan.needed == 300 and plan.fits is False
    assert DiskPlan(Path("out"), {"weights": 100}, {"weights": 10}, saves=5, limit=2, free=300).fits is True
