"""Instruments the notebooks look through: which DataLoader worker built each batch, the CLI in a subprocess.

:func:`batch_origins` shows notebook 10 that ``dataloader_num_workers`` starts processes;
:func:`run_cli` lets notebook 11 run ``gluekit`` as a user would, under ``torchrun`` when asked.
"""
from __future__ import annotations


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
