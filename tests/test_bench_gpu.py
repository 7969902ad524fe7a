"""benchmarks/bench_gpu.py (``bash scripts/gpu-check.sh``) in its CPU mode: the GPU check's own code path on
tiny shapes of both native families, so it is known to run before any GPU sees it.

One run of the CPU mode is shared by the tests below (about 20 CPU seconds). Timings and the CPU
memory numbers are not checked (they are not what the GPU rows measure); what is checked: every
case trained and was recorded or skipped with its reason, the losses are finite numbers, the
generation evaluation on the trained model agrees with the reference's predict, and chat ran on the
model's own device.
"""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick():
    import torch

    from benchmarks import bench_gpu

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = bench_gpu.run(quick=True)
    finally:
        torch.set_num_threads(threads)
    return bench_gpu, rows, dict(bench_gpu.EXTRA)


def test_every_case_is_recorded_or_skipped_with_its_reason(quick):
    bench_gpu, rows, extra = quick
    names = [r.name for r in rows]
    for case in bench_gpu.quick_cases():
        recorded = f"peak memory, {case.name}" in names
        skipped = [s for s in extra["skipped"] if s.startswith(case.name)]
        assert recorded != bool(skipped), (case.name, skipped)
        if case.quantization and skipped:  # W11's 4-bit loader or bitsandbytes absent: said so
            assert bench_gpu.quantization_problem() in skipped[0]
    assert sum(n.startswith("peak memory,") for n in names) >= 4  # both families, checkpointing and packing on/off
    assert any(n.startswith("fits a 24 GiB card,") for n in names)
    for r in rows:
        if r.name.startswith("peak memory,"):
            losses = r.details["losses"]
            assert len(losses) == 3 and all(math.isfinite(x) and 0 < x < 20 for x in losses), (r.name, losses)
            assert r.details["tokens_per_s"] > 0 and r.baseline_value > 0  # gluekit plan's estimate next to it


def test_the_trained_model_is_evaluated_and_chatted_with_on_its_device(quick):
    _, rows, extra = quick
    evals = [r for r in rows if r.name.startswith("generation eval,")]
    assert len(evals) == 2 and all(r.same_output is True for r in evals)  # gluekit's replies == the reference's
    chats = {k: v for k, v in extra["facts"].items() if k.startswith("chat")}
    assert sorted(chats) == ["chat, GLM-4-9B-0414 (Glm4ForCausalLM)", "chat, glm-4-9b-chat-hf (GlmForCausalLM)"]
    for v in chats.values():
        assert v["model"] == "runs on the CPU (float32)" and v["inputs_on"] == "cpu" and v["chat_reply_chars"] > 0
    assert any(r.name.startswith("packing on vs off,") for r in rows)


def test_the_gpu_mode_refuses_a_machine_without_cuda_in_one_line():
    """``bash scripts/gpu-check.sh`` without a GPU: one sentence naming the CPU mode, no traceback, nothing written."""
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh")], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        "python -m benchmarks gpu: no CUDA device here. It measures a GPU; `bash scripts/gpu-check.sh --quick` "
        "runs its CPU mode (tiny shapes, nothing written).")
    assert "Traceback" not in r.stderr


def test_the_9b_shapes_of_both_families():
    """GLM-4-9B's shape in each class, built on the meta device: the parameter counts the plan uses."""
    import torch
    from transformers import AutoModelForCausalLM

    from benchmarks.bench_gpu import matmul_params, model_config

    counts = {}
    for family in ("glm", "glm4"):
        with torch.device("meta"):
            m = AutoModelForCausalLM.from_config(model_config(family, tiny=False))
        counts[family] = (type(m).__name__, sum(p.numel() for p in m.parameters()), matmul_params(m))
    # glm-4-9b-chat-hf: 9,399,951,360 parameters; 0414 adds two RMSNorm weights (4,096 each) per layer x 40
    assert counts["glm"] == ("GlmForCausalLM", 9_399_951_360, 9_399_951_360 - 151_552 * 4096 - (2 * 40 + 1) * 4096
                             - 40 * (4096 + 2 * 256))
    assert counts["glm4"][0] == "Glm4ForCausalLM" and counts["glm4"][1] - counts["glm"][1] == 40 * 2 * 4096
