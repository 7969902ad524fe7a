"""Facts about the course itself: which lora.yaml field each notebook cell demonstrates.

A cell demonstrates a field when it carries a marker line ``# lora.yaml: training_args.save_steps``
and its code really uses the field (the last part of the path appears outside the marker).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

MARKER = re.compile(r"^\s*#\s*lora\.yaml:\s*([\w.]+)\s*$", re.M)
COMMENTED_KEY = re.compile(r"^(\s*)#\s*(\w+):", re.M)


def lora_yaml_fields(path: str | Path) -> list[str]:
    """Leaf field paths of a lora.yaml, including keys that are commented out (``# deepspeed: ...``)."""
    from ruamel.yaml import YAML

    text = Path(path).read_text(encoding="utf-8")
    tree = YAML(typ="safe", pure=True).load(text)
    out: list[str] = []

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out.append(f"{prefix}{k}")

    walk(tree, "")
    # a commented key is a field too: place it under the section whose indentation it shares
    for m in COMMENTED_KEY.finditer(text):
        indent, key = len(m.group(1)), m.group(2)
        before = text[:m.start()].splitlines()
        parent = next((ln.split(":")[0].strip() for ln in reversed(before)
                       if ln.strip() and not ln.lstrip().startswith("#") and len(ln) - len(ln.lstrip()) < indent), None)
        out.append(f"{parent}.{key}" if indent and parent else key)
    return out


def field_coverage(notebook_dir: str | Path) -> dict[str, list[tuple[str, int]]]:
    """field path -> [(notebook name, code-cell index)] for every marked cell that uses the field."""
    table: dict[str, list[tuple[str, int]]] = {}
    for nb in sorted(Path(notebook_dir).glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        for i, cell in enumerate(code):
            src = "".join(cell["source"])
            body = MARKER.sub("", src)
            for path in MARKER.findall(src):
                if path.rsplit(".", 1)[-1] in body:
                    table.setdefault(path, []).append((nb.name, i))
    return table


def batch_origins(dataloader, n_batches: int = 8) -> list[dict]:
    """Which worker process built each of the first ``n_batches`` batches of a DataLoader.

    Wraps the loader's collate_fn (which runs inside the worker) to record the worker id and the
    process id; returns ``[{"batch", "worker", "pid", "keys"}]``. The main process is worker -1.
    """
    import os

    import torch
    from torch.utils.data import DataLoader

    inner = dataloader.collate_fn

    def collate(features):
        info = torch.utils.data.get_worker_info()
        batch = inner(features)
        batch["_origin"] = torch.tensor([info.id if info else -1, os.getpid()])
        batch["_keys"] = sorted(features[0])
        return batch

    # same dataset, batches and worker count as the Trainer's loader (accelerate wraps it)
    loader = DataLoader(dataloader.dataset, batch_sampler=dataloader.batch_sampler,
                        num_workers=dataloader.num_workers, collate_fn=collate)
    out = []
    for i, batch in enumerate(loader):
        if i == n_batches:
            break
        worker, pid = batch["_origin"].tolist()
        out.append({"batch": i, "worker": worker, "pid": pid, "keys": batch["_keys"]})
    return out


def run_cli(args: list[str], nproc: int = 1, cwd=None):
    """Run ``gluekit ARGS`` in a subprocess (under ``torch.distributed.run`` when ``nproc`` > 1).

    Returns the ``CompletedProcess``; raises ``RuntimeError`` with the end of stderr on failure.
    One thread per process: 2 processes on 2 cores would otherwise oversubscribe them.
    """
    import os
    import subprocess
    import sys

    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(launcher + ["-m", "gluekit", *args], capture_output=True, text=True, env=env, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"gluekit {' '.join(args[:1])} failed:\n{r.stderr[-3000:]}")
    return r
