"""Where models run: the one place gluekit chooses a device, and the dtype that goes with it.

* :func:`accelerator` is the device every model is loaded on and every input is sent to: an
  explicit ``device`` argument, else the ``GLUEKIT_DEVICE`` environment variable (``cpu``,
  ``cuda``, ``cuda:1`` ...), else ``cuda:<LOCAL_RANK>`` when CUDA is available (``cuda:0`` outside
  torchrun; the device the Trainer of that rank uses), else the CPU.
* :func:`dtype_for`: ``bfloat16`` on an accelerator (GLM-4 gives NaN losses in float16),
  ``float32`` on the CPU (bf16 matrix products on a CPU are slow and gain nothing there).
* :func:`describe` / :func:`where`: one line, ``runs on cuda:0 (NVIDIA H200, bf16)`` or
  ``runs on the CPU (float32)``, for a device or for a loaded model.
* :func:`model_device`: where a model takes its inputs (its input embedding's device).

Tests put models on an injected device (``accelerator("meta")``: the real loading and generation
code paths, no memory) and check that every forward pass receives its inputs on the device of
the model's weights.
"""
from __future__ import annotations

import os
from typing import Mapping

ENV = "GLUEKIT_DEVICE"
"""Environment variable that overrides the device choice (``cpu`` to keep a GPU free, ``cuda:1`` ...)."""

SHORT_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "float32"}


def accelerator(device=None, environ: Mapping[str, str] | None = None):
    """The ``torch.device`` models run on: ``device`` if given, else ``$GLUEKIT_DEVICE``, else
    ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``.

    A device named explicitly (argument or environment) is used as named; one that does not exist
    on this machine raises :class:`~gluekit.errors.GluekitError` saying what is there instead.
    """
    import torch

    env = os.environ if environ is None else environ
    source = "device"
    if device is None and env.get(ENV, "").strip():
        device, source = env[ENV].strip(), ENV
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda", int(env.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    from .errors import GluekitError

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise GluekitError(f"`{source}`: not a torch device, got {device!r}. Use cpu, cuda or cuda:N.") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise GluekitError(f"`{source}`: {device!r} asked for, but this machine has no CUDA device "
                               f"(torch {torch.__version__}). Use cpu, or install a CUDA build of torch on a GPU machine.")
        if dev.index is not None and dev.index >= count:
            raise GluekitError(f"`{source}`: {device!r} asked for, but this machine has {count} CUDA device(s), "
                               f"cuda:0 to cuda:{count - 1}.")
    return dev


def dtype_for(device):
    """The dtype models are loaded in on ``device``: float32 on the CPU, bfloat16 anywhere else."""
    import torch

    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


def card_name(device) -> str | None:
    """The GPU's name (``NVIDIA H200``) for a CUDA device, else None."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(dev.index or 0)


def free_memory() -> None:
    """Give back what freed tensors held: a garbage collection, then the CUDA cache (when there is CUDA)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def describe(device, dtype=None) -> str:
    """``runs on cuda:0 (NVIDIA H200, bf16)``, ``runs on the CPU (float32)``: where and in what a model runs.

    ``dtype`` defaults to :func:`dtype_for` the device.
    """
    import torch

    dev = torch.device(device)
    dt = SHORT_DTYPE.get(str(dtype or dtype_for(dev)).replace("torch.", ""), str(dtype).replace("torch.", ""))
    if dev.type == "cpu":
        return f"runs on the CPU ({dt})"
    name = card_name(dev)
    label = f"{dev.type}:{dev.index or 0}" if dev.type == "cuda" else str(dev)
    return f"runs on {label} ({name + ', ' if name else ''}{dt})"


def model_device(model):
    """The device ``model`` takes its inputs on: its input embedding's (the first parameter's when it has none).

    Under a multi-device ``device_map`` the embedding sits on the first device, where generation
    starts; wrappers (PEFT, DDP) forward ``get_input_embeddings`` to the model inside.
    """
    get = getattr(model, "get_input_embeddings", None)
    emb = None
    if get is not None:
        try:
            emb = get()
        except (AttributeError, NotImplementedError):
            emb = None
    weight = getattr(emb, "weight", None)
    if weight is not None:
        return weight.device
    return next(model.parameters()).device


def where(model) -> str:
    """:func:`describe` for a loaded model: its input device and the dtype of its weights."""
    weight = getattr(getattr(model, "get_input_embeddings", lambda: None)(), "weight", None)
    if weight is None:
        weight = next(model.parameters())
    return describe(weight.device, weight.dtype)


__all__ = ["ENV", "accelerator", "dtype_for", "card_name", "free_memory", "describe", "model_device", "where"]
