"""Training memory per device, by component (bytes): the checked model behind ``gluekit plan``.

Model states = weights + gradients + optimizer state; activations are never sharded by ZeRO.
The first-order textbook split used to explain ZeRO (notebook 11) is
:func:`gluekit.course.memory.estimate`; this module replaces its two rules of thumb.

:func:`peak_memory` (what ``gluekit plan`` prints) counts what a transformers-native GLM + PEFT
LoRA actually keeps for backward, tensor by tensor (counted with ``torch.autograd.graph.
saved_tensors_hooks`` by :func:`gluekit.course.memory.saved_bytes`, and checked against the peak
RSS of real CPU training steps by ``benchmarks/bench_memory.py``). Per token, in bytes, with
``w`` = bytes of the load dtype, ``a`` = 4 (PEFT upcasts adapter weights to fp32), ``h`` hidden,
``nq`` = heads x head_dim, ``nkv`` = kv heads x head_dim, ``F`` FFN width, ``V`` vocabulary:

* each RMSNorm keeps its input upcast to fp32 and 1/rms: ``4h + 4``. A LoRA model has 2 per layer
  that keep them (layer 0's input norm has no gradient to pass back when the embeddings are frozen;
  the final norm does); full fine-tuning 2 per layer + 1, each also keeping its normalised input
  ``w h`` for the norm weight's gradient.
* attention (SDPA: flash / memory-efficient kernels, never the T x T matrix): q and k after RoPE,
  v and the output in ``w``, plus the fp32 logsumexp per head: ``w(2 nq + 2 nkv) + 4 heads``; and each
  layer's own RoPE cos/sin, ``2 w rotary_dim`` per sequence position (not per row).
* SwiGLU MLP: the gate_up output (for silu' and the product) and silu(gate): ``3 F w``.
* per LoRA-adapted linear of input width ``d``: the lora_A output ``a r``, and lora_A's input: with
  ``lora_dropout > 0`` the dropout output ``a d`` plus its mask (CUDA's fused kernel: bool, ``d``; the
  CPU path: the input dtype, ``a d``; none in layer 0, whose input needs no gradient); else, when
  ``a != w``, the copy PEFT casts to the adapter dtype (one per adapter: q, k and v each hold their
  own) ``a d``; else the base layer's own input ``w d``, once per distinct input (q, k, v share one).
* full fine-tuning: every linear keeps its input, ``w(h + nq + h + F)`` per layer, and lm_head's ``w h``.
* logits: the loss upcasts to fp32 and keeps log_softmax's output; at the first backward node the
  gradient coming from nll_loss and log_softmax's input gradient join it: ``12 V`` whatever ``w``
  (the ``w``-dtype logits and their fp32 copy are gone: the Trainer keeps only the loss). At the end
  of the forward pass it is at most ``(w + 8) V``. Per position whose logits exist: gluekit's Trainer
  computes them only where a label is predicted (gluekit.loss), so ``label_tokens`` of them, not
  every token (the default, and the bound, counts every token).
* gradient checkpointing (non-reentrant, transformers' default) keeps only each layer's input
  ``w h`` (L of them) and the final norm; the layer recomputed during backward holds its full set
  (bounded here by twice it, for its gradients) while the logits are already freed, so the peak is
  the larger of the two moments.

The peak is at the start of backward: all saved tensors alive + the logits' 12 bytes. GLM-4-9B,
bf16, lora.yaml (r 8, dropout 0.1 on q/k/v), per token: about 194 kB per layer (MLP 82 kB, LoRA
inputs 62 kB, norms 33 kB, attention 18 kB), 40 layers, plus 1.8 MB of logits (V = 151,552): at 1,025
tokens 7.4 GiB of activations and 1.7 GiB of logits, where the textbook rules say 4.7 and 1.4.
Not modelled: eager attention (it keeps the ``T x T`` probabilities), autocast (``bf16: true``),
padding masks, the CUDA context, allocator fragmentation and communication buffers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

GiB = 1024 ** 3
DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}
ADAPTER_BYTES = 4  # PEFT's autocast_adapter_dtype keeps LoRA weights (and so their math) in fp32
LOGIT_BYTES = 12   # fp32 log_softmax output + its incoming gradient + its input gradient, per logit
# Adapted linears that read the same input tensor share it when no copy is made (native GLM names).
SHARED_INPUT = {"q_proj": "attn_in", "k_proj": "attn_in", "v_proj": "attn_in", "gate_up_proj": "mlp_in"}


def state_bytes(trainable: int, zero_stage: int, devices: int) -> tuple[float, float, float]:
    """(fp32 weights, gradients, AdamW moments) in bytes per device: 4 + 4 + 8 per trainable parameter,
    sharded as ZeRO stage ``zero_stage`` shards them over ``devices``.

    Stage 1 partitions the optimizer states, and those are the fp32 master weights as well as
    AdamW's two moments (DeepSpeed's ZeRO-1/2 optimizer keeps an fp32 copy of its own partition
    only; the model's weights in the load dtype stay whole until stage 3); stage 2 adds the
    gradients. Stage 3's parameter sharding is in the load-dtype weights (:func:`peak_memory`).
    """
    fp32_copy, grads, moments = 4.0 * trainable, 4.0 * trainable, 8.0 * trainable
    if zero_stage >= 1:  # the optimizer states: fp32 master weights and both moments
        fp32_copy /= devices
        moments /= devices
    if zero_stage >= 2:
        grads /= devices
    return fp32_copy, grads, moments


# ---------------------------------------------------------------- the checked estimate

@dataclass
class LoraSite:
    """One adapted linear of a decoder layer."""

    name: str          # leaf name, e.g. "q_proj"
    in_features: int
    r: int
    dropout: float


@dataclass
class Trainables:
    """What a PEFT config trains on a model, counted on the meta device (no weights)."""

    method: str                  # "LORA" or "FULL" (no peft_config)
    total_params: int            # the base model's parameters (adapters excluded)
    trainable_params: int
    sites: list[LoraSite] = field(default_factory=list)
    """The adapted linears of ONE decoder layer (every layer has the same)."""
    linears: list[tuple[int, int]] = field(default_factory=list)
    """(in_features, out_features) of every decoder-layer linear: what a 4-bit/8-bit base quantizes."""


def count_trainables(model_config, peft_config=None) -> Trainables:
    """Parameter counts and LoRA sites from a meta-device model with PEFT's own injection.

    ``peft_config``: a ``LoraConfig`` (remote-code names such as ``query_key_value`` are mapped
    as :func:`gluekit.lora.resolve_targets` does; a name that matches nothing raises its
    :class:`~gluekit.errors.ConfigError`), or None for full fine-tuning. Another PEFT method raises
    ``NotImplementedError``: the estimate does not model it.
    """
    import copy

    from peft import LoraConfig

    from .lora import resolve_targets, with_adapters
    from .models import meta_model

    from torch import nn

    net = meta_model(model_config)
    total = sum(p.numel() for p in net.parameters())
    linears = [(m.in_features, m.out_features) for n, m in net.named_modules()
               if isinstance(m, nn.Linear) and ".layers." in f"{n}."]
    if peft_config is None:
        return Trainables("FULL", total, total, linears=linears)
    if not isinstance(peft_config, LoraConfig):
        raise NotImplementedError(f"`peft_config.peft_type`: the memory estimate models LORA or full fine-tuning, "
                                  f"got {type(peft_config).__name__}.")
    pc = copy.deepcopy(peft_config)  # the caller's config keeps its names
    res = resolve_targets(net, pc.target_modules)
    if res.mapped:
        pc.target_modules = set(res.target_modules)
    net = with_adapters(net, pc, in_place=True)  # net was built only to be counted
    trainable = sum(p.numel() for n, p in net.named_parameters() if "lora_" in n)
    sites = []
    for name, mod in net.named_modules():
        if ".layers.0." in f"{name}." and hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
            drop = mod.lora_dropout["default"]
            sites.append(LoraSite(name.rsplit(".", 1)[-1], mod.in_features, mod.r["default"], float(getattr(drop, "p", 0.0))))
    return Trainables("LORA", total, trainable, sites, linears)


def quantized_weight_bytes(trainables: Trainables, settings: dict | None, w: int) -> float:
    """Bytes of a base loaded with bitsandbytes ``settings`` (``gluekit.quantization.resolve``'s; None:
    ``total_params * w``). 4-bit: every decoder linear in nf4 (:func:`gluekit.quantization.nf4_bytes`:
    codes and constants), 8-bit: 1 byte per weight and a fp32 scale per output row; the rest
    (embeddings, output layer, norms, biases) in fp32, where PEFT's k-bit preparation casts it."""
    from .quantization import nf4_bytes

    if not settings:
        return trainables.total_params * w
    n_q = sum(i * o for i, o in trainables.linears)
    if settings.get("load_in_4bit"):
        q = sum(nf4_bytes(i * o, bool(settings.get("bnb_4bit_use_double_quant"))) for i, o in trainables.linears)
    else:
        q = sum(i * o + 4 * o for i, o in trainables.linears)
    return q + 4 * (trainables.total_params - n_q)


@dataclass
class PeakMemory:
    """Peak memory of one device during a training step, by component (bytes)."""

    weights: float
    """Every base parameter in the load dtype."""
    trainable_states: float
    """Trainable parameters: fp32 weights (4) + gradients (4) + AdamW's two moments (8) = 16 bytes each."""
    activations: float
    """Tensors the decoder layers (and final norm) keep for backward, at the peak."""
    logits: float
    """The loss's fp32 logits buffers at the peak (12 bytes per logit at the start of backward)."""
    gradient_checkpointing: bool
    tokens: int
    detail: dict = field(default_factory=dict)
    """Bytes per token of each part, and the states split into weights / grads / moments."""

    @property
    def total(self) -> float:
        return self.weights + self.trainable_states + self.activations + self.logits

    @property
    def step_increase(self) -> float:
        """What a step adds over the resting state (weights, adapters, AdamW moments): activations, logits, gradients."""
        return self.activations + self.logits + self.detail["grads"]

    def gib(self) -> dict[str, float]:
        return {k: round(getattr(self, k) / GiB, 3) for k in ("weights", "trainable_states", "activations", "logits", "total")}


def _shape(config) -> dict:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = getattr(config, "rope_parameters", None) or {}
    rotary = int(head_dim * rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0)))
    return dict(h=config.hidden_size, F=config.intermediate_size, L=config.num_hidden_layers, V=config.vocab_size,
                heads=heads, nq=heads * head_dim, nkv=(getattr(config, "num_key_value_heads", None) or heads) * head_dim,
                rotary=rotary)


def layer_bytes(config, trainables: Trainables, w: int, *, first: bool = False, device: str = "cuda",
                a: int = ADAPTER_BYTES) -> dict[str, int]:
    """Bytes per token one decoder layer keeps for backward, by part (see the module docstring).

    ``first``: layer 0 of a LoRA model with frozen embeddings, not checkpointed: no gradient flows
    into its input, so its input norm keeps nothing and its dropouts keep no mask.
    ``device``: dropout keeps a bool mask on CUDA (fused kernel), a mask in the input dtype on CPU.
    """
    s = _shape(config)
    norm = 4 * s["h"] + 4  # fp32 input + fp32 1/rms, per RMSNorm
    out = {"norms": norm * (1 if first else 2),
           "attention": w * (2 * s["nq"] + 2 * s["nkv"]) + 4 * s["heads"],
           "mlp": 3 * s["F"] * w}
    if trainables.method == "FULL":
        # every linear keeps its input (q/k/v share one; o; gate_up; down) and each norm its normalised
        # input for the norm weight's gradient
        out["linear_inputs"] = w * (2 * s["h"] + s["nq"] + s["F"]) + 2 * w * s["h"]
        return out
    mask = 1 if device == "cuda" else a
    lora, shared = 0, set()
    for site in trainables.sites:
        lora += a * site.r  # lora_A's output, kept by lora_B
        if site.dropout > 0:
            lora += (a + (0 if first else mask)) * site.in_features  # dropout output (lora_A's input) + its mask
        elif a != w:
            lora += a * site.in_features  # PEFT's cast of the input to the adapter dtype, one per adapter
        elif SHARED_INPUT.get(site.name, site.name) not in shared:
            shared.add(SHARED_INPUT.get(site.name, site.name))
            lora += w * site.in_features  # the base layer's input itself, once per distinct tensor
    out["lora"] = lora
    return out


def peak_memory(model_config, trainables: Trainables, *, batch: int, seq_len: int, dtype: str = "bfloat16",
                gradient_checkpointing: bool = False, device: str = "cuda", zero_stage: int = 0,
                devices: int = 1, label_tokens: int | None = None, quantization: dict | None = None) -> PeakMemory:
    """Peak memory of one device for one training step on ``batch`` rows of ``seq_len`` tokens (no padding).

    ``dtype``: the load dtype of the base weights (``bfloat16`` on a GPU, ``float32`` on CPU);
    ``device``: ``cuda`` or ``cpu`` (only dropout masks differ). ZeRO shards the states as
    :func:`state_bytes` says; activations are never sharded.
    ``label_tokens``: positions whose logits exist. gluekit's Trainer computes them only where a label
    is predicted (gluekit.loss); None counts every token, the bound (a reply filling the row, or a
    model without ``logits_to_keep``).
    ``quantization``: resolved bitsandbytes settings (a 4-bit/8-bit base): the weights term becomes
    :func:`quantized_weight_bytes`, and the hidden stream is fp32 (k-bit preparation casts everything
    not quantized to fp32; measured on CPU: the step increase then equals an fp32 base's within 0.4 MiB).
    """
    w = DTYPE_BYTES[str(dtype).replace("torch.", "")]
    load_w = w
    if quantization:
        w = 4
    s = _shape(model_config)
    tokens = batch * seq_len
    full = trainables.method == "FULL"
    # final norm (fp32 input + 1/rms); full SFT also: its normalised input and lm_head's input
    final = 4 * s["h"] + 4 + (2 * w * s["h"] if full else 0)
    rope = 2 * w * s["rotary"] * seq_len  # each layer's own cos/sin (GLM's partial RoPE), per sequence, bytes
    layer = layer_bytes(model_config, trainables, w, device=device)
    first = layer if full else layer_bytes(model_config, trainables, w, first=True, device=device)
    logits = LOGIT_BYTES * s["V"]  # bytes per position whose logits exist
    logit_rows = tokens if label_tokens is None else label_tokens
    if gradient_checkpointing:
        kept = s["L"] * w * s["h"] + final  # each layer's input, held by its checkpoint (bytes/token)
        recompute = 2 * (sum(layer.values()) + rope / tokens)  # one layer's set and, bounding them, its gradients
        # the larger moment: backward's start (logits alive) or the recomputed layer (logits freed)
        act, log = (kept, logits) if logits * logit_rows >= recompute * tokens else (kept + recompute, 0)
    else:
        act = sum(first.values()) + (s["L"] - 1) * sum(layer.values()) + final + s["L"] * rope / tokens
        log = logits
    weights = quantized_weight_bytes(trainables, quantization, load_w) / (devices if zero_stage >= 3 else 1)
    fp32_copy, grads, moments = state_bytes(trainables.trainable_params, zero_stage, devices)
    detail = {"per_token": {"layer": layer, "layer_0": first, "final": final, "logits": logits},
              "rope_per_layer": rope, "adapter_weights": fp32_copy, "grads": grads, "moments": moments,
              "dtype_bytes": w, "device": device, "logit_rows": logit_rows}
    return PeakMemory(weights, fp32_copy + grads + moments, act * tokens, log * logit_rows, gradient_checkpointing,
                      tokens, detail)


# ---------------------------------------------------------------- from a config file

def model_config_for(model: str | None = None):
    """The model's config without weights: the tiny GLM (None), a GLM-4-9B shape by name, or a folder's config.json.

    Names (:attr:`gluekit.families.Family.plan_names`): ``glm-4-9b`` / ``glm-4-9b-chat-hf`` (``GlmForCausalLM``),
    ``glm-4-9b-0414`` (``Glm4ForCausalLM``), ``glm-4-9b-chat`` (the remote-code model: its module tree,
    ``query_key_value`` ...). A folder is read by :func:`gluekit.families.shape_config` (a remote-code
    config.json as text, never its code).
    """
    from .errors import GluekitError
    from .families import FAMILIES, family_by_name, inspect_model, shape_config

    family = family_by_name(model) if model is not None else None
    if family is not None:
        return family.config_9b()
    try:
        info = inspect_model(model)
    except GluekitError as e:
        names = ", ".join(f.plan_names[0] if f.key != "glm" else "glm-4-9b-chat-hf" for f in FAMILIES.values())
        raise GluekitError(f"{e.problems[0]} A GLM-4-9B shape can also be named: {names}.") from None
    return shape_config(info)


def zero_stage_of(cfg) -> int:
    """``zero_optimization.stage`` of the config's ``training_args.deepspeed`` file (0 without one)."""
    try:
        ds = cfg.deepspeed_path()  # found as training finds it: the current folder, then the config's folder
        if ds is None:
            return 0
        return int(json.loads(Path(ds).read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage", 0))
    except (OSError, ValueError, TypeError):
        return 0


@dataclass
class MemoryPlan:
    """Peak memory per device for a config, with and without gradient checkpointing."""

    model: str
    dtype: str
    batch: int
    seq_len: int
    devices: int
    zero_stage: int
    trainables: Trainables
    without_checkpointing: PeakMemory
    with_checkpointing: PeakMemory
    gradient_checkpointing: bool
    """What the config asks for (``training_args.gradient_checkpointing``): the estimate that applies."""
    quantization: dict | None = None
    """The bitsandbytes settings in force (``gluekit.quantization.resolve``), None for a plain base."""

    @property
    def applies(self) -> PeakMemory:
        return self.with_checkpointing if self.gradient_checkpointing else self.without_checkpointing

    def summary(self) -> str:
        t = self.trainables
        zero = f", ZeRO-{self.zero_stage} over {self.devices} devices" if self.zero_stage else ""
        q = self.quantization
        base = (f"{'4' if q.get('load_in_4bit') else '8'}-bit base"
                + (f" ({q['bnb_4bit_quant_type']}{', double quant' if q.get('bnb_4bit_use_double_quant') else ''}), "
                   f"fp32 hidden stream" if q.get("load_in_4bit") else ", fp32 hidden stream")) if q else f"{self.dtype} weights"
        lines = [f"peak memory per device ({self.model}, {base}{zero}; longest batch "
                 f"{self.batch} x {self.seq_len} tokens; {t.method}: {t.trainable_params:,d} of {t.total_params:,d} "
                 f"parameters trained):",
                 f"  {'':26} {'checkpointing off':>18} {'checkpointing on':>18}"]
        off, on = self.without_checkpointing, self.with_checkpointing
        rows = [("weights", "weights"), ("trainable + grads + AdamW", "trainable_states"),
                ("activations", "activations"), ("logits (fp32 loss)", "logits"), ("total", "total")]
        for label, key in rows:
            lines.append(f"  {label:26} {_fmt(getattr(off, key)):>18} {_fmt(getattr(on, key)):>18}")
        lines.append(f"  applies: checkpointing {'on' if self.gradient_checkpointing else 'off'} "
                     f"(training_args.gradient_checkpointing), {_fmt(self.applies.total)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def pm(p: PeakMemory) -> dict:
            return {k: getattr(p, k) for k in ("weights", "trainable_states", "activations", "logits", "total")}

        return {"model": self.model, "dtype": self.dtype, "batch": self.batch, "seq_len": self.seq_len,
                "devices": self.devices, "zero_stage": self.zero_stage, "method": self.trainables.method,
                "total_params": self.trainables.total_params, "trainable_params": self.trainables.trainable_params,
                "gradient_checkpointing": self.gradient_checkpointing, "quantization": self.quantization,
                "bytes": {"checkpointing_off": pm(self.without_checkpointing), "checkpointing_on": pm(self.with_checkpointing)}}


def _fmt(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= 0.1 * GiB else f"{n / 2 ** 20:.1f} MiB"


def planned_dtype(model: str | None = None) -> str:
    """The load dtype a memory plan assumes for ``model`` (as ``gluekit plan --model`` names it).

    The tiny GLM (None / ``"tiny"``) in what gluekit loads it in on this machine
    (:func:`gluekit.models.default_dtype`: float32 on CPU); any other model in ``bfloat16``, the
    dtype it is trained in on a GPU.
    """
    from .models import TINY, default_dtype

    if model is None or str(model) == TINY:
        return str(default_dtype()).replace("torch.", "")
    return "bfloat16"


def plan_memory(cfg, model_config=None, *, dtype: str, model_name: str = "tiny GLM", devices: int = 1) -> MemoryPlan:
    """Peak memory per device of a run of ``cfg`` (a FinetuneConfig) on ``model_config`` (default: the tiny GLM).

    Batch = ``per_device_train_batch_size`` rows of the longest sample, ``cfg.max_length`` tokens,
    both as the Trainer will use them (read from ``cfg.training_arguments(portable=True)``: a GPU run is
    planned on any machine). ``dtype``: the
    load dtype of the weights (:func:`planned_dtype` gives gluekit's); ``model_name`` is only shown.
    """
    if model_config is None:
        model_config = model_config_for(None)
    from .quantization import resolve

    trainables = count_trainables(model_config, cfg.peft_config_object())
    args = cfg.training_arguments(portable=True)  # a GPU run (bf16, deepspeed) is planned on any machine
    quant = resolve(getattr(cfg, "quantization", None), bf16=dtype == "bfloat16")
    batch = args.per_device_train_batch_size
    ckpt = bool(args.gradient_checkpointing or args.activation_checkpointing)
    stage = zero_stage_of(cfg)
    kw = dict(batch=batch, seq_len=cfg.max_length, dtype=dtype, zero_stage=stage, devices=devices, quantization=quant)
    return MemoryPlan(model_name, dtype, batch, cfg.max_length, devices, stage, trainables,
                      peak_memory(model_config, trainables, gradient_checkpointing=False, **kw),
                      peak_memory(model_config, trainables, gradient_checkpointing=True, **kw), ckpt, quant)
