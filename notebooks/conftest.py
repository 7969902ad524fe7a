"""Environment for notebooks run under nbval, and a record of what each notebook costs.

Kernels inherit this pytest process's environment. After each notebook, the kernel's wall time and
CPU seconds and peak resident memory (from /proc, Linux) go to tests/artifacts/notebook-costs.json, and a
notebook whose kernel peaked above the 1.5 GB budget (Binder gives 2 GB) fails its last cell.
"""
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars redraw with timings: never reproducible
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # its fork warning goes to stderr
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

MEMORY_BUDGET_MB = 1536  # per notebook kernel, resident; the README promises Binder's 2 GB fits
COSTS = Path(__file__).resolve().parent.parent / "tests" / "artifacts" / "notebook-costs.json"
_started: dict[str, float] = {}


def _kernel_pid(nbfile) -> int | None:
    kernel = getattr(nbfile, "kernel", None)
    proc = getattr(getattr(getattr(kernel, "km", None), "provisioner", None), "process", None)
    return getattr(proc, "pid", None)


def _kernel_peak_mb(pid: int | None) -> float | None:
    """Peak RSS in MB of the kernel process itself so far (Linux only; not its subprocesses)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MB
    except (OSError, TypeError):
        return None
    return None


def _kernel_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) the kernel process used: less sensitive to a busy machine than wall time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime in clock ticks
    except (OSError, TypeError, IndexError, ValueError):
        return None


def pytest_runtest_setup(item):
    _started.setdefault(item.parent.nodeid, time.monotonic())


def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last cell: record its cost, and fail it when over the memory budget."""
    nb = item.parent
    if not hasattr(nb, "kernel") or (nextitem is not None and nextitem.parent is nb):
        return
    pid = _kernel_pid(nb)
    peak, cpu = _kernel_peak_mb(pid), _kernel_cpu_s(pid)
    wall = time.monotonic() - _started.get(nb.nodeid, time.monotonic())
    COSTS.parent.mkdir(parents=True, exist_ok=True)
    costs = json.loads(COSTS.read_text()) if COSTS.is_file() else {}
    costs[Path(str(nb.fspath)).name] = {"wall_s": round(wall, 1), "kernel_cpu_s": cpu and round(cpu, 1),
                                        "kernel_peak_rss_mb": peak and round(peak),
                                        "load_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M")}
    COSTS.write_text(json.dumps(dict(sorted(costs.items())), indent=1) + "\n")
    if peak is not None and peak > MEMORY_BUDGET_MB:
        raise AssertionError(f"{nb.fspath.basename}: the kernel peaked at {peak:.0f} MB, over the "
                             f"{MEMORY_BUDGET_MB} MB budget for a notebook")
