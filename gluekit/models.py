"""Load tokenizers and models: the embedded tiny GLM by default, a local path or hub id otherwise.

Also builds GLM-4-9B-chat's shape on the meta device (no memory, no weights) for parameter
accounting, in both naming schemes: transformers' native ``GlmForCausalLM`` and a module tree
with the remote-code names (``query_key_value``, ``dense_h_to_4h`` ...).
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import GluekitError
from .families import MODULE_TREE_KEY
from .quiet import quiet_progress

TINY = "tiny"  # the name that selects the embedded model


def model_path(model: str | os.PathLike | None) -> str:
    """``None``/``"tiny"`` -> the tiny GLM's folder (built on first use); anything else unchanged."""
    if model is None or str(model) == TINY:
        from .tiny import tiny_model_dir

        return str(tiny_model_dir())
    return str(model)


def load_tokenizer(model: str | os.PathLike | None = None, trust_remote_code: bool = False):
    """The model's tokenizer. THUDM's remote ``ChatGLM4Tokenizer`` is checked first and, with
    ``trust_remote_code``, patched for transformers 5 (:mod:`gluekit.remote_code`)."""
    from transformers import AutoTokenizer

    from .remote_code import prepare_tokenizer, tokenizer_problems

    path = model_path(model)
    problems = tokenizer_problems(path, trust_remote_code)
    if problems:
        raise GluekitError(problems)
    return prepare_tokenizer(AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code), path,
                             trust_remote_code)


def default_dtype():
    """The dtype of :func:`gluekit.device.accelerator`: bfloat16 on a GPU (GLM-4 gives NaN losses in
    float16), float32 on CPU."""
    from .device import accelerator, dtype_for

    return dtype_for(accelerator())


def load_model(model: str | os.PathLike | None = None, trust_remote_code: bool = False, dtype=None,
               device_map=None, device=None, quantization: dict | None = None):
    """``AutoModelForCausalLM.from_pretrained`` with gluekit's defaults.

    ``trust_remote_code`` stays off unless asked: it runs Python files that come with the
    weights. The original ``THUDM/glm-4-9b-chat`` needs it; ``glm-4-9b-chat-hf`` does not. For that
    remote-code folder gluekit says what fails without it, and applies its compatibility shim with it
    (:func:`gluekit.remote_code.model_load_kwargs`).
    ``device``: where the weights go, loaded straight there (default :func:`gluekit.device.accelerator`:
    the GPU when there is one, else the CPU); ``dtype`` defaults to that device's
    (:func:`gluekit.device.dtype_for`). An explicit ``device_map`` (accelerate's, e.g. ``"auto"``)
    takes precedence over ``device``.
    ``quantization``: the config's ``quantization`` mapping; when it loads in 4 or 8 bit, the base
    is quantized with bitsandbytes and prepared for k-bit training (:mod:`gluekit.quantization`).
    """
    from transformers import AutoModelForCausalLM

    from .device import accelerator, dtype_for
    from .remote_code import model_load_kwargs

    path = model_path(model)
    if Path(path).exists() is False and "/" not in path:
        raise FileNotFoundError(f"model {path!r}: no such folder. Give a local folder or a hub id like THUDM/glm-4-9b-chat-hf.")
    dev = accelerator(device)
    dtype = dtype or dtype_for(dev)
    if device_map is None and dev.type != "cpu" and not _deepspeed_zero3():
        device_map = {"": dev}  # materialised on the device: no full copy in host memory first
    extra = model_load_kwargs(path, trust_remote_code)  # {} unless remote-code GLM-4
    from .quantization import enabled

    if enabled(quantization):
        return _load_quantized(path, trust_remote_code, dtype, device_map, quantization, extra)
    with quiet_progress():
        return AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=trust_remote_code, dtype=dtype, device_map=device_map, **extra,
        )


def _deepspeed_zero3() -> bool:
    """True while a DeepSpeed ZeRO-3 config is active (it partitions the weights itself; no device_map then)."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled()


def _load_quantized(path: str, trust_remote_code: bool, dtype, device_map, quantization: dict, extra: dict):
    """A 4-bit/8-bit base through ``quantization_config=`` (transformers 5 has no ``load_in_4bit=``)."""
    import torch
    from transformers import AutoModelForCausalLM

    from . import quantization as q

    q.require()
    settings = q.resolve(quantization, bf16=(dtype or default_dtype()) == torch.bfloat16)
    with quiet_progress(), q.quiet_bitsandbytes():
        net = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=trust_remote_code, dtype=dtype or default_dtype(), device_map=device_map,
            quantization_config=q.bnb_config(settings), **extra,
        )
    net.gluekit_quantization = settings  # saved next to the adapter; the merge reads it back
    return q.prepare_kbit(net)


def base_model(model):
    """The transformers model inside the wrappers training adds: DDP's ``.module``, then PEFT's base model."""
    import torch

    inner = getattr(model, "module", None)  # DistributedDataParallel (and DataParallel) keep it here
    if isinstance(inner, torch.nn.Module):
        model = inner
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_native(model) -> bool:
    """True for a model class of transformers itself; False for remote code (``trust_remote_code``),
    which builds its own masks and positions and lacks transformers' newer forward arguments."""
    return type(base_model(model)).__module__.startswith("transformers.")


def forward_accepts(model, name: str) -> bool:
    """Does the (unwrapped) model's ``forward`` take the argument ``name``?"""
    import inspect

    return name in inspect.signature(base_model(model).forward).parameters


def glm4_9b_config():
    """GLM-4-9B-chat's shape as a native ``GlmConfig`` (transformers' defaults are that shape)."""
    from transformers import GlmConfig

    return GlmConfig(vocab_size=151552, hidden_size=4096, intermediate_size=13696, num_hidden_layers=40,
                     num_attention_heads=32, num_key_value_heads=2, head_dim=128, tie_word_embeddings=False)


def meta_model(config=None, trust_remote_code: bool = False):
    """The model of ``config`` (default: GLM-4-9B's native shape) built on the meta device.

    Real module tree and shapes, no memory and no weights: what parameter counts, LoRA target
    checks and PEFT's injection (:func:`gluekit.lora.with_adapters`) need. ``trust_remote_code``
    runs the model code that comes with a remote-code config. A config marked as the remote-code
    tree (:func:`gluekit.families.shape_config`) gives :func:`remote_code_skeleton` of its shape.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if getattr(config, MODULE_TREE_KEY, None) == "chatglm":
        return remote_code_skeleton(config)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config or glm4_9b_config(), trust_remote_code=trust_remote_code)


def remote_code_skeleton(config=None):
    """GLM-4-9B-chat's remote-code module tree (names and shapes only) on the meta device.

    Mirrors ``ChatGLMForConditionalGeneration``: ``transformer.encoder.layers.N.self_attention.
    query_key_value`` (fused q,k,v with bias), ``dense``, ``mlp.dense_h_to_4h`` (SwiGLU, 2 x FFN),
    ``mlp.dense_4h_to_h`` and an untied ``transformer.output_layer``.
    """
    import torch
    from torch import nn

    c = config or glm4_9b_config()
    qkv = c.num_attention_heads * c.head_dim + 2 * c.num_key_value_heads * c.head_dim

    class Norm(nn.Module):  # RMSNorm's only parameter
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(c.hidden_size))

    def layer():
        m = nn.Module()
        m.input_layernorm, m.post_attention_layernorm = Norm(), Norm()
        m.self_attention = nn.Module()
        m.self_attention.query_key_value = nn.Linear(c.hidden_size, qkv, bias=True)
        m.self_attention.dense = nn.Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=False)
        m.mlp = nn.Module()
        m.mlp.dense_h_to_4h = nn.Linear(c.hidden_size, 2 * c.intermediate_size, bias=False)
        m.mlp.dense_4h_to_h = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)
        return m

    with torch.device("meta"):
        root = nn.Module()
        root.transformer = nn.Module()
        root.transformer.embedding = nn.Module()
        root.transformer.embedding.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        root.transformer.encoder = nn.Module()
        root.transformer.encoder.layers = nn.ModuleList(layer() for _ in range(c.num_hidden_layers))
        root.transformer.encoder.final_layernorm = Norm()
        root.transformer.output_layer = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
    return root
