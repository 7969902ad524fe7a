"""Memory as the course explains and measures it, next to the checked model in :mod:`gluekit.memory`.

* :func:`estimate`: the first-order textbook split used to explain DeepSpeed ZeRO (notebook 11).
  Model states = weights + gradients + optimizer state; activations are never sharded by ZeRO.

  * weights: every parameter in the load dtype (bf16: 2 bytes); ZeRO-3 splits them over devices.
  * trainable states: per trainable parameter, an fp32 copy (4), its gradient (4) and AdamW's two
    moments (8) = 16 bytes (PEFT keeps LoRA weights in fp32). ZeRO-1 shards the optimizer states,
    which under mixed precision are the fp32 master copy as well as the two moments; ZeRO-2 also
    the gradients; ZeRO-3 also the weights.
  * activations: what backward needs, per layer, about ``tokens x hidden x 34`` bytes in bf16 for a
    standard block (Korthikanti et al., 2022, with fused attention), scaled here by the FFN width;
    with gradient checkpointing only each layer's input (``tokens x hidden x 2``) plus one layer's
    full set.
  * logits: ``tokens x vocab`` in bf16 plus the fp32 copy the loss upcasts to, and its gradient.

* :func:`saved_bytes`: what autograd really keeps for backward in one forward pass, counted with
  ``torch.autograd.graph.saved_tensors_hooks``; the tests hold :func:`gluekit.memory.peak_memory`
  against it, part by part.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..memory import GiB, state_bytes


@dataclass
class MemoryEstimate:
    weights: float
    trainable_states: float
    activations: float
    logits: float

    @property
    def total(self) -> float:
        return self.weights + self.trainable_states + self.activations + self.logits

    def gib(self) -> dict[str, float]:
        d = {k: round(v / GiB, 2) for k, v in asdict(self).items()}
        d["total"] = round(self.total / GiB, 2)
        return d


def estimate(config, total_params: int, trainable_params: int, tokens: int, *, weight_bytes: int = 2,
             gradient_checkpointing: bool = False, zero_stage: int = 0, devices: int = 1) -> MemoryEstimate:
    """Peak memory of one device for a training step over ``tokens`` tokens (batch x sequence length).

    The first-order textbook rules (kept as they are: notebook 11 prints them). For a checked
    estimate of a real GLM + LoRA run use :func:`gluekit.memory.peak_memory`.
    """
    h, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    ffn_scale = config.intermediate_size / (4 * h)  # the 34-byte rule assumes an FFN of 4 x hidden
    per_layer = tokens * h * (10 + 24 * ffn_scale)  # bytes: attention part ~10, MLP part ~24 at 4x width
    if gradient_checkpointing:
        activations = layers * tokens * h * 2 + per_layer
    else:
        activations = layers * per_layer
    weights = total_params * weight_bytes / (devices if zero_stage >= 3 else 1)
    fp32_copy, grads, moments = state_bytes(trainable_params, zero_stage, devices)
    logits = tokens * vocab * (2 + 4 + 4)
    return MemoryEstimate(weights, fp32_copy + grads + moments, activations, logits)



def saved_bytes(model, input_ids, labels=None, label_only: bool = False) -> dict[str, int]:
    """Bytes autograd keeps for backward in one forward pass, by part: ``layers``, ``final`` (final norm), ``loss``.

    Every tensor autograd saves passes through a ``saved_tensors_hooks`` pack hook; each storage is
    counted once (several ops can keep the same tensor) and parameters are left out (they are
    weights, not activations). ``layers`` is a list, one count per decoder layer. Under gradient
    checkpointing the layers' tensors are not saved and so not counted. ``label_only``: the loss
    as gluekit's Trainer computes it, from label-position logits only (gluekit.loss).
    """
    import torch

    from ..loss import label_only_inputs

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    where = ["loss"]  # the part running now; the loss is computed outside every module below
    counts: dict = {"layers": [], "final": 0, "loss": 0}
    seen: set[int] = set()
    hooks = []
    layers = _decoder_layers(model)

    def enter(part):
        return lambda module, args: where.append(part) and None  # None: leave the inputs alone

    def leave(module, args, output):
        where.pop()  # returns None: leave the output alone

    for i, layer in enumerate(layers):
        hooks += [layer.register_forward_pre_hook(enter(i)), layer.register_forward_hook(leave)]
    norm = _final_norm(model)
    hooks += [norm.register_forward_pre_hook(enter("final")), norm.register_forward_hook(leave)]
    counts["layers"] = [0] * len(layers)

    def pack(t):
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            if isinstance(where[-1], int):
                counts["layers"][where[-1]] += st.nbytes()
            else:
                counts[where[-1]] += st.nbytes()
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                      "labels": input_ids if labels is None else labels}
            out = model(**(label_only_inputs(inputs) if label_only else inputs))
    finally:
        for hk in hooks:
            hk.remove()
    del out
    return counts


def _decoder_layers(model):
    for name, mod in model.named_modules():
        if name.endswith("layers") and hasattr(mod, "__len__"):
            return list(mod)
    raise ValueError("no decoder layers found (expected a module list named `layers`)")


def _final_norm(model):
    from ..models import base_model

    return base_model(model).model.norm
