"""gluekit doctor: versions against the lock, the device and bf16, one line per problem with its fix."""
import json
from types import SimpleNamespace

import pytest

from gluekit import doctor
from gluekit.cli import main
from gluekit.doctor import DeviceCheck, device_check, diagnose, locked_versions

LOCKED = {"torch": "2.13.0", "transformers": "5.24.0", "peft": "0.21.2", "accelerate": "1.15.0", "datasets": "5.2.0",
          "bitsandbytes": "0.50.2"}
CPU = DeviceCheck("cpu", "CPU", "CPU build", None)
TESTED = {**LOCKED, "torch": "2.13.0+cpu", "bitsandbytes": None, "deepspeed": None}


def test_the_tested_set_up_has_no_problem():
    report = diagnose(TESTED, CPU, LOCKED)
    assert report.ok
    assert report.lines() == [
        "torch         2.13.0+cpu  tested: yes",
        "transformers  5.24.0      tested: yes",
        "peft          0.21.2      tested: yes",
        "accelerate    1.15.0      tested: yes",
        "datasets      5.2.0       tested: yes",
        "bitsandbytes  -           not installed (optional: 4-bit loading for QLoRA)",
        "deepspeed     -           not installed (optional: DeepSpeed ZeRO on CUDA GPUs)",
        "device        CPU (torch CPU build); bf16: not used (gluekit trains in float32 on the CPU)",
        "problems: none",
    ]


def test_an_untested_version_and_a_missing_package_are_problems_with_their_fix():
    report = diagnose({**TESTED, "transformers": "5.30.1", "peft": None}, CPU, LOCKED)
    assert not report.ok
    assert report.problems == [
        '`transformers` 5.30.1 is installed, CI tests 5.24.0. Fix: pip install "transformers==5.24.0" or run '
        "`bash scripts/setup.sh` in a clone of gluekit (it installs requirements/lock.txt).",
        '`peft` is not installed. Fix: pip install "peft==0.21.2" or run `bash scripts/setup.sh` in a clone of '
        "gluekit (it installs requirements/lock.txt).",
    ]
    assert "transformers  5.30.1      tested: no (CI tests 5.24.0)" in report.lines()
    assert "peft          -           not installed" in report.lines()


def test_optional_packages_are_notes():
    report = diagnose({**TESTED, "bitsandbytes": "0.50.2", "deepspeed": "0.19.8"}, CPU, LOCKED)
    assert report.ok, report.problems
    assert "bitsandbytes  0.50.2      tested: yes" in report.lines()
    assert "deepspeed     0.19.8      tested: no (not in the lock)" in report.lines()
    assert report.notes == [
        "`deepspeed` 0.19.8 is not in the lock: gluekit's tests do not cover it.",
        "deepspeed is installed but there is no CUDA GPU: its ZeRO stages need one "
        "(`gluekit check` reports a config that names training_args.deepspeed).",
    ]
    # an installed optional package at another version than the lock's is a problem like any other
    assert not diagnose({**TESTED, "bitsandbytes": "0.49.0"}, CPU, LOCKED).ok


def fake_torch(cuda: str | None, gpus: int = 0, name: str = "", cap=(9, 0), bf16: bool = True, hip=None):
    def no_cuda(*a, **k):
        raise AssertionError("Torch not compiled with CUDA enabled")  # what a CPU build does

    cuda_mod = SimpleNamespace(
        is_available=lambda: gpus > 0, device_count=lambda: gpus,
        get_device_name=(lambda i=0: name) if gpus else no_cuda,
        get_device_capability=(lambda i=0: cap) if gpus else no_cuda,
        is_bf16_supported=lambda including_emulation=True: bf16 if gpus else False)
    return SimpleNamespace(version=SimpleNamespace(cuda=cuda, hip=hip), cuda=cuda_mod,
                           backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: False)))


def test_devices():
    h200 = device_check(fake_torch("12.8", 1, "NVIDIA H200"))
    assert h200.line() == "NVIDIA H200 (torch CUDA 12.8 build, compute capability 9.0); bf16: yes"
    assert diagnose(TESTED, h200, LOCKED).notes == []
    t4 = device_check(fake_torch("12.6", 2, "Tesla T4", cap=(7, 5), bf16=False))
    assert t4.line() == "Tesla T4 x 2 (torch CUDA 12.6 build, compute capability 7.5); bf16: no"
    assert diagnose(TESTED, t4, LOCKED).notes == [
        "Tesla T4 x 2 computes bfloat16 only by emulation (native from compute capability 8.0): gluekit loads "
        "models in bfloat16 on a GPU, which is slow here, and float16 gives GLM-4 NaN losses. Use an Ampere or "
        "newer GPU for GLM-4-9B."]
    idle = device_check(fake_torch("13.0"))  # PyPI's default build on a machine without a GPU
    assert idle.line() == "CPU (torch CUDA 13.0 build); bf16: not used (gluekit trains in float32 on the CPU)"
    (note,) = diagnose(TESTED, idle, LOCKED).notes
    assert note.startswith("torch is a CUDA 13.0 build but no GPU is visible") and "GLUEKIT_TORCH=cpu" in note
    assert device_check(fake_torch(None)) == CPU
    assert device_check(fake_torch(None, hip="6.3")).torch_build == "ROCm 6.3 build"


def test_locked_versions_read_the_shipped_lock_with_markers(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("torch==2.13.0\n    # via gluekit\nsoupsieve==2.10 ; python_full_version < '3.0'\n"
                    "soupsieve==4.1.3 ; python_full_version >= '3.0'\ncolorama==0.4.6 ; sys_platform == 'nonesuch'\n")
    assert locked_versions(lock) == {"torch": "2.13.0", "soupsieve": "4.1.3"}
    shipped = locked_versions()
    assert doctor.LOCK.is_file() and {name for name, *_ in doctor.PACKAGES if name not in ("bitsandbytes", "deepspeed")} <= set(shipped)
    assert diagnose(TESTED, CPU, {}).notes[0].startswith("no lock file found")


def test_cli_exit_code_and_json(capsys, monkeypatch):
    """This environment is the tested one (tests/test_lock.py checks that), so the doctor finds no problem."""
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "transformers" in out and "problems: none" in out
    assert main(["doctor", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["ok"] is True and d["device"]["kind"] in ("cpu", "cuda", "mps")
    monkeypatch.setattr(doctor, "installed_version", lambda name: "0.0.1" if name == "peft" else TESTED.get(name))
    assert main(["doctor"]) == 1
    assert '`peft` 0.0.1 is installed, CI tests 0.21.2. Fix: pip install "peft==0.21.2"' in capsys.readouterr().out
