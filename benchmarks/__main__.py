"""``python -m benchmarks [NAME ...] [--quick]``: run benchmarks, save results, rewrite BENCHMARKS.md.

Each ``benchmarks/bench_<name>.py`` defines ``run(quick: bool) -> list[Row]``. Results of every
benchmark ever run on this checkout live in benchmarks/results/<name>.json; BENCHMARKS.md is
rebuilt from all of them, so running one benchmark updates its rows and keeps the others.
``--quick`` uses small sizes and writes nothing (a smoke run: outputs compared, timings meaningless).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from .common import RESULTS, ROOT, fmt_ratio, save

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def render() -> str:
    """BENCHMARKS.md from benchmarks/results/*.json."""
    lines = ["# Benchmarks", "",
             "Every row compares gluekit with a baseline measured in the same run, on the same machine,",
             "alternating the two (A B A B ...) and taking medians, so the ratio holds even on a busy machine.",
             "Rebuilt by `python -m benchmarks` from `benchmarks/results/*.json`; do not edit by hand.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        m = res["machine"]
        where = f"{m['cpu']}, {m['cores_usable']} cores" + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        lines += [f"## {res['bench']}", "",
                  f"`{res['command']}` on {m['date']}: {where}; torch {m['torch']}, transformers {m['transformers']}, "
                  f"peft {m['peft']}, python {m['python']} (1-min load {m['load_1min']}).", "",
                  "| comparison | baseline | metric | baseline | gluekit | ratio | target | met | same output |",
                  "|---|---|---|---:|---:|---:|---|---|---|"]
        for r in res["rows"]:
            same = {True: "yes", False: "NO", None: "n/a"}[r["same_output"]]
            lines.append(f"| {r['name']} | {r['baseline']} | {r['metric']} | {r['baseline_value']:.4g} | "
                         f"{r['gluekit_value']:.4g} | {fmt_ratio(r['ratio'])} | {r['target']} | "
                         f"{'yes' if r['met'] else 'no'} | {same} |")
        notes = [f"- {r['name']}: {r['notes']}" for r in res["rows"] if r.get("notes")]
        if res.get("notes"):
            notes.insert(0, res["notes"])
        lines += [""] + notes + [""] if notes else [""]
    extra = HERE / "not_ratios.md"  # measured costs that have no baseline, and rows still open
    if extra.is_file():
        lines += ["", extra.read_text(encoding="utf-8").strip()]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help=f"which benchmarks (default: all of {', '.join(available())})")
    p.add_argument("--quick", action="store_true", help="small sizes, nothing written: checks that they run and agree")
    a = p.parse_args(argv)
    names = a.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    failed = []
    for name in names:
        mod = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name}", flush=True)
        rows = mod.run(quick=a.quick)
        for r in rows:
            print(f"  {r.name}: {r.metric} baseline {r.baseline_value:.4g}, gluekit {r.gluekit_value:.4g} -> "
                  f"{fmt_ratio(r.ratio)} (target {r.target}: {'met' if r.met else 'NOT met'}; same output: {r.same_output})",
                  flush=True)
            if r.same_output is False:
                failed.append(f"{name}: {r.name}")
        if not a.quick:
            cmd = f"python -m benchmarks {name}"
            save(name, rows, cmd, getattr(mod, "EXTRA", None))
    if not a.quick:
        (ROOT / "BENCHMARKS.md").write_text(render(), encoding="utf-8")
        print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    if failed:
        print("outputs differ:", *failed, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
