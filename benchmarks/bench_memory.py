"""``gluekit.memory.peak_memory`` against the measured peak memory of real training steps (tiny GLM, CPU).

Each setting runs in a fresh Python process (``python benchmarks/bench_memory.py --child JSON``):
tiny GLM in fp32 + LoRA as configs/tiny.yaml (r 16, all-linear, no dropout), AdamW, one warm-up
step of the same shape (kernels, thread pools and AdamW's moments exist afterwards), then measured
steps of forward + backward + ``optimizer.step()`` + ``zero_grad()`` on a batch of rows all of the
same length (the longest-sample case: no padding), with the loss as gluekit's Trainer computes it
(logits only at label positions, gluekit.loss): every token a label (the bound), or a prompt and a
64-token reply. For each measured step the kernel's high-water
mark is reset (``/proc/self/clear_refs`` <- "5"), VmRSS read just before, VmHWM just after: the
increase is what the step itself adds (activations, logits, gradients), and it is compared with the
estimate of exactly those parts, ``PeakMemory.step_increase``. Weights, adapters and AdamW's moments
are resident before the step and are plain parameter counts (checked exactly in tests/test_memory.py).

Honest RSS: glibc returns a freed block to the OS only if it was mmap'ed, and its default mmap
threshold rises (up to 32 MiB) each time a large block is freed, so after the first step many
activation-sized tensors would come from the heap and stay resident after being freed (RSS then
exceeds the live bytes, and the high-water mark depends on fragmentation). The child therefore runs
with ``MALLOC_MMAP_THRESHOLD_=131072`` (fixed: every tensor over 128 KiB is mmap'ed and unmapped on
free), so RSS follows the live tensors. torch's CPU allocator has no cache of its own. Two settings
are also measured with glibc's defaults and reported in the notes.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (the child): make `benchmarks` and `gluekit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, Row

TINY_YAML = ROOT / "configs" / "tiny.yaml"
HONEST_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
# (batch, tokens per row, gradient checkpointing, config overrides, reply tokens per row): activations
# and logits at 0.1 - 1.2 GB, far above the noise of a few MB; q/k/v with dropout is lora.yaml's kind
# of adapter. Reply None: every token is a label (the bound); 64: a prompt then a 64-token reply.
SETTINGS = [
    (8, 321, False, [], None), (8, 321, True, [], None),
    (16, 321, False, [], None), (16, 321, True, [], None),
    (16, 321, False, [], 64), (16, 321, True, [], 64),
    (4, 1025, False, [], None), (4, 1025, True, [], None),
    (32, 128, False, [], None),
    (16, 321, False, ["peft_config.r=8", "peft_config.lora_dropout=0.1", "peft_config.target_modules=[query_key_value]"],
     None),
]
QUICK = [(4, 128, False, [], None), (4, 128, True, [], 32)]
# the same measurement on a 4-bit base (nf4 + double quant, k-bit preparation), where bitsandbytes is installed
QUANT_SETTINGS = [(8, 321, False, [], None), (8, 321, True, [], None), (16, 321, False, [], 64)]
FOUR_BIT = {"load_in_4bit": True}
DEFAULT_ALLOCATOR = [(16, 321, False, [], None), (16, 321, True, [], None)]


def _status_kib() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {k: int(v) for k, v in re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB", text, re.M)}


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(spec: dict) -> dict:
    """One setting in this (fresh) process: warm-up step, then measured steps. Returns bytes."""
    import gc

    import torch

    from gluekit.config import load_config
    from gluekit.lora import apply_peft
    from gluekit.loss import label_only_inputs
    from gluekit.models import load_model

    torch.manual_seed(0)
    cfg = load_config(TINY_YAML, spec["overrides"])
    base = load_model(None, dtype=torch.float32, quantization=FOUR_BIT if spec.get("quant") else None)
    model, _ = apply_peft(base, cfg.peft_config_object(), verbose=False)
    if spec["checkpointing"]:
        model.get_base_model().activation_checkpointing_enable()  # what the Trainer calls (non-reentrant)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.randint(0, model.config.vocab_size, (spec["batch"], spec["seq_len"]))
    labels = ids.clone()
    if spec["reply"]:
        labels[:, : spec["seq_len"] - spec["reply"]] = -100  # the prompt: no labels
    inputs = label_only_inputs({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})

    def step():
        # as gluekit's Trainer.training_step: label-position logits only (gluekit.loss), and only the
        # loss survives the forward pass (outputs are dropped)
        loss = model(**inputs).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: allocator, oneDNN/OpenMP state, AdamW moments
    increases, before = [], []
    for _ in range(spec["steps"]):
        gc.collect()
        if not _reset_peak():
            raise SystemExit("cannot reset the RSS high-water mark (/proc/self/clear_refs)")
        rss0 = _status_kib()["VmRSS"]
        step()
        increases.append((_status_kib()["VmHWM"] - rss0) * 1024)
        before.append(rss0 * 1024)
    return {"increases": increases, "rss_before": before, "threads": torch.get_num_threads()}


def measure(batch: int, seq_len: int, checkpointing: bool, overrides: list[str], reply: int | None = None,
            steps: int = 2, honest: bool = True, quant: bool = False) -> dict:
    spec = {"batch": batch, "seq_len": seq_len, "checkpointing": checkpointing, "overrides": overrides,
            "reply": reply, "steps": steps, "quant": quant}
    env = dict(os.environ, **(HONEST_ENV if honest else {}))
    if not honest:
        for k in HONEST_ENV:
            env.pop(k, None)
    r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"memory child failed for {spec}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def estimated(batch: int, seq_len: int, checkpointing: bool, overrides: list[str], reply: int | None = None,
              quant: bool = False):
    from gluekit.config import load_config
    from gluekit.memory import count_trainables, model_config_for, peak_memory
    from gluekit.quantization import resolve

    cfg = load_config(TINY_YAML, overrides)
    conf = model_config_for(None)
    return peak_memory(conf, count_trainables(conf, cfg.peft_config_object()), batch=batch, seq_len=seq_len,
                       dtype="float32", device="cpu", gradient_checkpointing=checkpointing,
                       label_tokens=batch * (reply or seq_len - 1),  # positions predicting a label
                       quantization=resolve(FOUR_BIT) if quant else None)


def _label(batch, seq_len, ckpt, overrides, reply) -> str:
    kind = "q/k/v r 8 dropout 0.1" if overrides else "tiny.yaml LoRA"
    labels = f"{reply}-token replies" if reply else "every token a label"
    return f"peak step memory, {batch} x {seq_len} tokens ({labels}), {kind}, checkpointing {'on' if ckpt else 'off'}"


def _row(name: str, measured: float, est: float, notes: str, details: dict) -> Row:
    ratio = est / measured
    return Row(name=name, baseline="measured: peak RSS increase of a CPU training step (tiny GLM, fp32)",
               metric="peak bytes", baseline_value=measured, gluekit_value=est, ratio=ratio,
               target="within 15%", met=abs(ratio - 1) <= 0.15, same_output=None, notes=notes, details=details)


def run(quick: bool = False) -> list[Row]:
    rows, measured = [], {}
    for batch, seq_len, ckpt, ov, reply in (QUICK if quick else SETTINGS):
        m = measure(batch, seq_len, ckpt, ov, reply, steps=1 if quick else 2)
        est = estimated(batch, seq_len, ckpt, ov, reply)
        peak = max(m["increases"])
        measured[(batch, seq_len, ckpt, tuple(ov), reply)] = (peak, est)
        rows.append(_row(_label(batch, seq_len, ckpt, ov, reply), peak, est.step_increase, "", {
            "measured_increases": m["increases"], "rss_before": m["rss_before"], "torch_threads": m["threads"],
            "estimate": {"activations": est.activations, "logits": est.logits, "grads": est.detail["grads"]},
            "estimate_per_token": est.detail["per_token"]}))
    # What checkpointing saves, measured (off - on) against estimated: isolates the activations,
    # which the logits (12 bytes x 8010 per token) otherwise outweigh.
    for (b, t, ck, ov, reply), (peak_off, est_off) in list(measured.items()):
        if ck or (b, t, True, ov, reply) not in measured:
            continue
        peak_on, est_on = measured[(b, t, True, ov, reply)]
        what = f", {reply}-token replies" if reply else ""
        rows.append(_row(f"memory saved by checkpointing, {b} x {t} tokens{what}", peak_off - peak_on,
                         est_off.total - est_on.total, "measured difference of the two rows above vs estimated",
                         {"off": peak_off, "on": peak_on}))
    from gluekit.quantization import available

    for batch, seq_len, ckpt, ov, reply in (QUANT_SETTINGS if available() and not quick else []):
        m = measure(batch, seq_len, ckpt, ov, reply, quant=True)
        est = estimated(batch, seq_len, ckpt, ov, reply, quant=True)
        rows.append(_row("4-bit base: " + _label(batch, seq_len, ckpt, ov, reply), max(m["increases"]), est.step_increase,
                         "nf4 + double quant, k-bit preparation (fp32 hidden stream)",
                         {"measured_increases": m["increases"], "rss_before": m["rss_before"]}))
    if not quick:
        notes = []
        for b, t, ck, ov, reply in DEFAULT_ALLOCATOR:
            m = measure(b, t, ck, ov, reply, honest=False)
            est = estimated(b, t, ck, ov, reply).step_increase
            notes.append(f"{b} x {t}, checkpointing {'on' if ck else 'off'}: {max(m['increases']) / 2**20:.0f} MiB "
                         f"measured (estimate {est / 2**20:.0f} MiB)")
        EXTRA["notes"] = ("With glibc's default malloc settings (dynamic mmap threshold) instead of "
                          f"MALLOC_MMAP_THRESHOLD_={HONEST_ENV['MALLOC_MMAP_THRESHOLD_']}: " + "; ".join(notes) + ".")
    return rows


EXTRA: dict = {}

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        raise SystemExit("run it as `python -m benchmarks memory`")
