"""``gluekit doctor``: is this machine set up the way CI tests gluekit?

It reads the installed versions of the packages a run depends on (torch, transformers, peft,
accelerate, datasets; bitsandbytes and deepspeed where installed) with ``importlib.metadata``,
without importing them, and compares each with the lock shipped in ``gluekit/requirements/lock.txt``
(the versions CI installs and tests; the repository's ``requirements/`` is the same folder). Then it
imports torch once for the device: CUDA, Apple's GPU or the CPU, and whether the device computes in
bfloat16 (GLM-4 gives NaN losses in float16).

A problem is something to fix before trusting a run: a required package missing, or a version other
than the tested one. A note is worth knowing but wrong for nobody: an optional package missing, a
CUDA build of torch on a machine without a GPU, a GPU without bfloat16. Each line says how to fix it.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

LOCK = Path(__file__).resolve().parent / "requirements" / "lock.txt"
# (name, required, what an optional package is for)
PACKAGES = (
    ("torch", True, ""), ("transformers", True, ""), ("peft", True, ""), ("accelerate", True, ""),
    ("datasets", True, ""), ("bitsandbytes", False, "4-bit loading for QLoRA"),
    ("deepspeed", False, "DeepSpeed ZeRO on CUDA GPUs"),
)
SETUP_FIX = "or run `bash scripts/setup.sh` in a clone of gluekit (it installs requirements/lock.txt)"


def public(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``: the local label names a build, not a version."""
    return version.split("+", 1)[0]


def locked_versions(path: str | Path = LOCK) -> dict[str, str]:
    """Name (canonical) -> locked version that applies to this Python and platform; {} without a lock."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    path = Path(path)
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator == "==" and (req.marker is None or req.marker.evaluate()):
            out.setdefault(canonicalize_name(req.name), specs[0].version)
    return out


def installed_version(name: str) -> str | None:
    """The installed distribution's version, or None; the package is not imported."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class PackageCheck:
    name: str
    installed: str | None
    tested: str | None
    """The lock's version, or None when the lock does not pin the package."""
    required: bool
    purpose: str = ""

    @property
    def verdict(self) -> str:
        if self.installed is None:
            return "not installed" + (f" (optional: {self.purpose})" if self.purpose else "")
        if self.tested is None:
            return "tested: no (not in the lock)"
        return "tested: yes" if public(self.installed) == self.tested else f"tested: no (CI tests {self.tested})"


@dataclass
class DeviceCheck:
    kind: str
    """``cuda``, ``mps``, ``cpu``, or ``unknown`` (torch missing or broken)."""
    name: str
    """What the line shows: ``NVIDIA H200 x 1``, ``CPU`` ..."""
    torch_build: str
    """``CPU build``, ``CUDA 12.8 build``, ``ROCm 6.3 build``."""
    bf16: bool | None
    """Native bfloat16 on the device; None on the CPU, where gluekit trains in float32."""
    capability: tuple[int, int] | None = None
    error: str | None = None

    def line(self) -> str:
        if self.kind == "unknown":
            return f"unknown ({self.error})"
        if self.kind == "cpu":
            bf16 = "not used (gluekit trains in float32 on the CPU)"
        elif self.bf16:
            bf16 = "yes"
        else:
            bf16 = "no"
        cap = f", compute capability {self.capability[0]}.{self.capability[1]}" if self.capability else ""
        return f"{self.name} (torch {self.torch_build}{cap}); bf16: {bf16}"


def device_check(torch: Any = None) -> DeviceCheck:
    """The device training would use. ``torch``: the module (default: imported here), or a stand-in in tests."""
    if torch is None:
        try:
            import torch
        except Exception as e:  # noqa: BLE001 (missing, or a broken install: reported, not raised)
            return DeviceCheck("unknown", "", "", None, error=f"torch does not import: {type(e).__name__}: {e}")
    hip = getattr(torch.version, "hip", None)
    build = f"ROCm {hip} build" if hip else (f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build")
    if torch.cuda.is_available():  # only then may the device be asked (a CPU build raises)
        n = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0) + (f" x {n}" if n > 1 else "")
        cap = tuple(torch.cuda.get_device_capability(0))
        return DeviceCheck("cuda", name, build, bool(torch.cuda.is_bf16_supported(including_emulation=False)), cap)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return DeviceCheck("mps", "Apple GPU (mps)", build, True)
    return DeviceCheck("cpu", "CPU", build, None)


@dataclass
class DoctorReport:
    packages: list[PackageCheck]
    device: DeviceCheck
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lock: str = "requirements/lock.txt"

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        width = max(len(p.name) for p in self.packages)
        vwidth = max(len(p.installed or "-") for p in self.packages)
        out = [f"{p.name:<{width}}  {p.installed or '-':<{vwidth}}  {p.verdict}" for p in self.packages]
        out.append(f"{'device':<{width}}  {self.device.line()}")
        out += [f"problem: {p}" for p in self.problems] or ["problems: none"]
        out += [f"note: {n}" for n in self.notes]
        return out

    def text(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict:
        return {"ok": self.ok, "packages": [{**asdict(p), "verdict": p.verdict} for p in self.packages],
                "device": asdict(self.device), "problems": self.problems, "notes": self.notes}


def diagnose(versions: dict[str, str | None] | Callable[[str], str | None] | None = None,
             device: DeviceCheck | None = None, locked: dict[str, str] | None = None) -> DoctorReport:
    """Check the packages of :data:`PACKAGES` against the lock, and the device.

    Every input can be given (the tests do): ``versions`` maps a name to its installed version (None:
    not installed) or is a function doing that (default: :func:`installed_version`); ``device`` is a
    :class:`DeviceCheck` (default: :func:`device_check`); ``locked`` the lock's versions (default:
    :func:`locked_versions`).
    """
    lookup = versions.get if isinstance(versions, dict) else (versions or installed_version)
    locked = locked_versions() if locked is None else locked
    packages = [PackageCheck(name, lookup(name), locked.get(name), required, purpose)
                for name, required, purpose in PACKAGES]
    device = device_check() if device is None else device
    report = DoctorReport(packages, device)
    if not locked:
        report.notes.append(f"no lock file found ({LOCK}): the tested versions are unknown.")
    for p in packages:
        if p.installed is None:
            if p.required:
                pin = f"=={p.tested}" if p.tested else ""
                report.problems.append(f"`{p.name}` is not installed. Fix: pip install \"{p.name}{pin}\" {SETUP_FIX}.")
        elif p.tested is not None and public(p.installed) != p.tested:
            report.problems.append(f"`{p.name}` {p.installed} is installed, CI tests {p.tested}. "
                                   f"Fix: pip install \"{p.name}=={p.tested}\" {SETUP_FIX}.")
        elif p.tested is None and locked:
            report.notes.append(f"`{p.name}` {p.installed} is not in the lock: gluekit's tests do not cover it.")
    report.notes += _device_notes(device, {p.name: p.installed for p in packages})
    return report


def _device_notes(device: DeviceCheck, installed: dict[str, str | None]) -> list[str]:
    notes = []
    if device.kind == "unknown":
        return notes
    if device.kind == "cpu" and device.torch_build != "CPU build":
        notes.append(f"torch is a {device.torch_build} but no GPU is visible, so training runs on the CPU. Check the "
                     "driver (`nvidia-smi`), or install the CPU build (about 4 GB less): "
                     "`GLUEKIT_TORCH=cpu bash scripts/setup.sh`.")
    if device.kind == "cuda" and not device.bf16:
        notes.append(f"{device.name} computes bfloat16 only by emulation (native from compute capability 8.0): "
                     "gluekit loads models in bfloat16 on a GPU, which is slow here, and float16 gives GLM-4 NaN "
                     "losses. Use an Ampere or newer GPU for GLM-4-9B.")
    if installed.get("deepspeed") and device.kind != "cuda":
        notes.append("deepspeed is installed but there is no CUDA GPU: its ZeRO stages need one "
                     "(`gluekit check` reports a config that names training_args.deepspeed).")
    return notes


__all__ = ["LOCK", "PACKAGES", "public", "locked_versions", "installed_version", "PackageCheck", "DeviceCheck",
           "device_check", "DoctorReport", "diagnose"]
