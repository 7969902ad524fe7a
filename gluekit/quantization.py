"""A quantized (4-bit or 8-bit) base model: QLoRA with bitsandbytes.

The config's top-level ``quantization:`` mapping holds ``transformers.BitsAndBytesConfig`` fields.
This module owns everything about it: the defaults filled in when only ``load_in_4bit: true`` is
given (:func:`resolve`), the ``BitsAndBytesConfig`` (:func:`bnb_config`), PEFT's k-bit preparation
(:func:`prepare_kbit`), the settings saved next to an adapter (:func:`save_settings`,
:func:`saved_settings`: ``adapter_config.json`` records nothing about the base's quantization, and a
merge must dequantize with exactly the training's settings), and the silencing of bitsandbytes'
start-up noise, scoped to the blocks that import or run it (:func:`quiet_bitsandbytes`).

bitsandbytes is optional (``pip install -e ".[qlora]"``): importing it costs several CPU seconds
(it wraps kernels in ``torch.compile`` at import), and once installed ``import peft`` pulls it in.

Defaults for ``load_in_4bit: true`` (QLoRA's): ``nf4`` codes, double quantization (the per-block
scales quantized again: 4.13 instead of 4.5 bits per weight), and the compute dtype bfloat16 on a card
with bf16, float32 otherwise (CPU, V100, T4: fp16 gives NaN losses with GLM-4, and bf16 on a CPU
without AVX512_BF16 is about 1.9x slower per step than fp32).
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import warnings
from pathlib import Path
from typing import Any

INSTALL_HINT = 'pip install -e ".[qlora]" (or pip install bitsandbytes)'
SETTINGS_FILE = "gluekit_quantization.json"  # written next to adapter_model.safetensors
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
QUANT_TYPES = ("nf4", "fp4")
BOOL_KEYS = ("load_in_4bit", "load_in_8bit", "bnb_4bit_use_double_quant", "llm_int8_has_fp16_weight",
             "llm_int8_enable_fp32_cpu_offload")
BNB_LOGGERS = ("bitsandbytes.backends.cpu.ops",     # "Failed to load CPU gemm_4bit_forward ..." (at import)
               "bitsandbytes.autograd._functions",  # "MatMul8bitLt: inputs will be cast ..." (8-bit inference)
               "transformers.integrations.bitsandbytes")  # "The modules are dequantized in ..." (merge)
BLOCK = 64  # nf4 weights per absmax constant
BLOCK2 = 256  # absmax constants per second-level constant (double quantization)


def available() -> bool:
    """Is bitsandbytes installed (without importing it: the import alone costs seconds)?"""
    return importlib.util.find_spec("bitsandbytes") is not None


def bnb_fields() -> tuple[str, ...]:
    """The keys ``quantization:`` accepts: ``BitsAndBytesConfig.__init__``'s arguments."""
    import inspect

    from transformers import BitsAndBytesConfig

    return tuple(n for n, p in inspect.signature(BitsAndBytesConfig.__init__).parameters.items()
                 if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))


def enabled(q: dict | None) -> bool:
    """Does the ``quantization`` mapping load a quantized base?"""
    return bool(q) and bool(q.get("load_in_4bit") or q.get("load_in_8bit"))


def resolve(q: dict | None, bf16: bool = False) -> dict | None:
    """The settings in force: ``q`` with QLoRA's defaults added for 4-bit (user values win), or None
    when off. ``bf16``: the card computes in bfloat16 (compute dtype bfloat16, else float32)."""
    if not enabled(q):
        return None
    out = dict(q)
    if out.get("load_in_4bit"):
        out.setdefault("bnb_4bit_quant_type", "nf4")
        out.setdefault("bnb_4bit_use_double_quant", True)
        out.setdefault("bnb_4bit_compute_dtype", "bfloat16" if bf16 else "float32")
    return out


def bnb_config(settings: dict):
    """``transformers.BitsAndBytesConfig`` from resolved settings (dtype names become torch dtypes)."""
    import torch
    from transformers import BitsAndBytesConfig

    kw = dict(settings)
    for k in ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage"):
        if isinstance(kw.get(k), str):
            kw[k] = getattr(torch, kw[k])
    return BitsAndBytesConfig(**kw)


def require() -> None:
    """Raise ImportError with the pip command when bitsandbytes is missing."""
    if not available():
        raise ImportError(f"quantization needs the bitsandbytes package, which is not installed. Install it: {INSTALL_HINT}.")


@contextlib.contextmanager
def quiet_bitsandbytes():
    """Only inside the block: bitsandbytes' logger lines and the warnings a gluekit user cannot act on.

    Wrap the first import of bitsandbytes (``import peft`` imports it when it is installed), 4-bit
    loading and k-bit preparation, 8-bit generation and dequantization. Logger levels are restored.
    """
    loggers = [logging.getLogger(n) for n in BNB_LOGGERS]  # bitsandbytes reuses these when it imports
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script_method` is deprecated", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=r".*gradient_checkpointing_enable.*", category=FutureWarning)
            yield
    finally:
        for lg, lvl in zip(loggers, old):
            lg.setLevel(lvl)


def prepare_kbit(model):
    """PEFT's k-bit preparation: freezes every weight and casts the 16-bit non-quantized ones
    (embeddings, norms, biases, output layer) to float32. Gradient checkpointing is left to the
    Trainer (``training_args.gradient_checkpointing``), which turns it on the non-deprecated way."""
    from peft import prepare_model_for_kbit_training

    with quiet_bitsandbytes():
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def is_quantized(model) -> bool:
    """Is this model's base loaded in 4 or 8 bit?"""
    from .models import base_model

    base = base_model(model)
    return bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False)) \
        and getattr(base, "hf_quantizer", None) is not None


def save_settings(folder: str | Path, settings: dict) -> Path:
    """Write the resolved settings next to an adapter (``gluekit_quantization.json``)."""
    path = Path(folder) / SETTINGS_FILE
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def saved_settings(folder: str | Path | None) -> dict | None:
    """The settings an adapter was trained with on a quantized base, or None (a plain base)."""
    if folder is None:
        return None
    path = Path(folder) / SETTINGS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def nf4_bytes(n: int, double_quant: bool = True) -> int:
    """Bytes bitsandbytes stores for one nf4/fp4 linear of ``n`` weights: two codes per byte, one
    absmax per 64 weights (fp32, or uint8 plus fp32 second-level constants with double quantization),
    the 16-entry code book (64 B); with double quantization also the 256-entry second code book and an
    offset. Checked against the real tensors of the tiny GLM in the tests."""
    blocks = -(-n // BLOCK)
    if double_quant:
        return -(-n // 2) + blocks + 4 * -(-blocks // BLOCK2) + 1024 + 4 + 64
    return -(-n // 2) + 4 * blocks + 64


def quantized_bytes(model) -> int:
    """Bytes a loaded 4-bit model holds in its quantized linears (weights and quantization constants)."""
    import torch

    total = 0
    for m in model.modules():
        w = getattr(m, "weight", None)
        qs = getattr(w, "quant_state", None)
        if qs is None or hasattr(m, "base_layer"):  # PEFT's wrapper shows its base layer's weight
            continue
        total += w.data.nbytes
        parts = [qs.absmax, qs.code]
        if getattr(qs, "nested", False):
            parts += [qs.state2.absmax, qs.state2.code, qs.offset]
        total += sum(t.nbytes for t in parts if isinstance(t, torch.Tensor))
    return total


__all__ = ["INSTALL_HINT", "SETTINGS_FILE", "available", "bnb_fields", "enabled", "resolve", "bnb_config", "require",
           "quiet_bitsandbytes", "prepare_kbit", "is_quantized", "save_settings", "saved_settings", "nf4_bytes",
           "quantized_bytes"]
