"""A first-order estimate of training memory per device, by component (bytes).

Used to explain what DeepSpeed ZeRO shards and why it matters so differently for LoRA and for
full fine-tuning. The split follows ZeRO's paper: model states = weights + gradients + optimizer
state; activations are never sharded by ZeRO.

* weights: every parameter in the load dtype (bf16: 2 bytes); ZeRO-3 splits them over devices.
* trainable states: per trainable parameter, an fp32 copy (4), its gradient (4) and AdamW's two
  moments (8) = 16 bytes (PEFT keeps LoRA weights in fp32). ZeRO-1 shards the moments, ZeRO-2 also
  the gradients, ZeRO-3 also the fp32 copy.
* activations: what backward needs, per layer, about ``tokens x hidden x 34`` bytes in bf16 for a
  standard block (Korthikanti et al., 2022, with fused attention), scaled here by the FFN width; with
  gradient checkpointing only each layer's input (``tokens x hidden x 2``) plus one layer's full set.
* logits: ``tokens x vocab`` in bf16 plus the fp32 copy the loss upcasts to, and its gradient.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

GiB = 1024 ** 3


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
    """Peak memory of one device for a training step over ``tokens`` tokens (batch x sequence length)."""
    h, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    ffn_scale = config.intermediate_size / (4 * h)  # the 34-byte rule assumes an FFN of 4 x hidden
    per_layer = tokens * h * (10 + 24 * ffn_scale)  # bytes: attention part ~10, MLP part ~24 at 4x width
    if gradient_checkpointing:
        activations = layers * tokens * h * 2 + per_layer
    else:
        activations = layers * per_layer
    weights = total_params * weight_bytes / (devices if zero_stage >= 3 else 1)
    fp32_copy, grads, moments = 4.0 * trainable_params, 4.0 * trainable_params, 8.0 * trainable_params
    if zero_stage >= 1:
        moments /= devices
    if zero_stage >= 2:
        grads /= devices
    if zero_stage >= 3:
        fp32_copy /= devices
    logits = tokens * vocab * (2 + 4 + 4)
    return MemoryEstimate(weights, fp32_copy + grads + moments, activations, logits)
