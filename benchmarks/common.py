"""Shared pieces of the benchmarks: interleaved timing, ratios, machine facts, result files.

Timings alternate baseline and candidate (A B A B ...) so that a busy machine slows both alike;
the ratio of medians is what a benchmark reports, never an absolute time alone.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    """One line of BENCHMARKS.md: what was compared, the ratio, whether the target was met."""

    name: str                 # e.g. "data preparation, combine=True"
    baseline: str             # what gluekit is compared with
    metric: str               # what the ratio divides, e.g. "conversations/s"
    baseline_value: float
    gluekit_value: float
    ratio: float              # > 1 means gluekit is better (faster, or less memory, as metric says)
    target: str               # e.g. ">= 2x"
    met: bool
    same_output: bool | None  # outputs compared and identical (None: not applicable)
    notes: str = ""
    details: dict = field(default_factory=dict)


def bench_threads() -> int:
    """Torch threads for a timed run: 1 unless GLUEKIT_BENCH_THREADS says otherwise.

    On a shared 2-core machine, two OpenMP threads that wait on each other while another
    process holds a core made the same work up to 10x slower from one run to the next; one thread
    keeps both sides' timings steady. Both sides always run with the same setting.
    """
    return int(os.environ.get("GLUEKIT_BENCH_THREADS", "1"))


@contextlib.contextmanager
def timed_threads():
    """Torch runs on :func:`bench_threads` threads inside the block, and on its old count after it."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(bench_threads())
    try:
        yield bench_threads()
    finally:
        torch.set_num_threads(old)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 3, warmup: int = 1) -> dict[str, float]:
    """Median wall seconds of each callable, run in turns (A B A B ...) after ``warmup`` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def machine() -> dict:
    """Where the numbers come from: CPU, cores, torch/transformers/peft versions, date."""
    import peft
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": bench_threads(),  # what the timed runs used (timed_threads), not the restored count
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "load_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def save(bench: str, rows: list[Row], command: str, extra: dict | None = None) -> Path:
    """Write benchmarks/results/<bench>.json: the rows, the machine and the command that made them."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{bench}.json"
    payload = {"bench": bench, "command": command, "machine": machine(), "rows": [asdict(r) for r in rows], **(extra or {})}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)  # never a half-written result file
    return path


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"
