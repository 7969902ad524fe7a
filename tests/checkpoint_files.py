"""Test-only: write a ``checkpoint-N`` folder holding the files a Trainer writes, in their real formats
(safetensors weights, torch.save zips, trainer_state.json), small enough to make in milliseconds."""
from __future__ import annotations

import json
import random
from pathlib import Path


def write_checkpoint(output_dir: str | Path, step: int, *, state: str | None = "auto", weights: bool = True,
                     optimizer: bool = True, scheduler: bool = True, rng: bool = True) -> Path:
    """``output_dir/checkpoint-<step>`` with adapter weights, optimizer, scheduler, RNG state and
    trainer_state.json (``state``: the file's text; "auto" = a state for ``step``; None = none)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    ck = Path(output_dir) / f"checkpoint-{step}"
    ck.mkdir(parents=True)
    if weights:
        save_file({"lora_A.weight": torch.ones(4, 8), "lora_B.weight": torch.zeros(8, 4)}, str(ck / "adapter_model.safetensors"))
    if optimizer:
        torch.save({"state": {0: {"exp_avg": torch.zeros(4, 8), "exp_avg_sq": torch.zeros(4, 8)}}, "param_groups": []},
                   ck / "optimizer.pt")
    if scheduler:
        torch.save({"last_epoch": step, "_last_lr": [1e-3]}, ck / "scheduler.pt")
    if rng:
        torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()},
                   ck / "rng_state.pth")
    if state == "auto":
        state = json.dumps({"global_step": step, "log_history": [{"step": step, "loss": 1.0}]})
    if state is not None:
        (ck / "trainer_state.json").write_text(state, encoding="utf-8")
    return ck


def cut(path: str | Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to its first ``keep`` fraction of bytes, as an interrupted copy leaves it."""
    p = Path(path)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * keep)])
    return p
