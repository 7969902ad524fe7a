"""Padding-free packing (``packing: true``): each training batch becomes one row with no padding.

With right padding, a batch of 8 demo samples of 20-60 tokens is 8 rows as wide as the longest,
and the model computes (and discards) every pad token. Packing lays the same samples end to end
in ONE row of exactly their total length. The batch is the same samples, so the number of samples
per optimizer step, steps per epoch and epochs do not change; only the padding disappears.

Three things keep a packed row equal to the separate samples (``tests/test_packing.py`` checks
each on the tiny GLM):

- position ids restart at 0 for every sample (rotary positions as if the sample were alone);
- each sample's first label is -100: the model shifts labels inside its loss, so the last token
  of sample k would otherwise be trained to predict the first token of sample k+1. GLM-4 samples
  start with ``[gMASK]``, never a label, so no real target is lost;
- no sample attends to another. transformers 5 (``masking_utils.find_packed_sequence_indices``)
  reads sample boundaries from the restarting position ids and builds a block-causal mask, but
  ONLY when there is no attention_mask and no cache. ``GlmModel`` creates a cache whenever
  ``use_cache`` is true, and ``config.use_cache`` is true by default, even in training, so a
  packed batch must carry ``use_cache=False`` or every sample silently attends to the ones before
  it (measured on the tiny GLM: logits off by up to 7.0 instead of 5e-6).

The first two are transformers' own ``DataCollatorWithFlattening``; :class:`PackCollator` adds
the third.
"""
from __future__ import annotations

from dataclasses import dataclass

from .models import base_model, is_native

# Attention implementations whose mask (or kernel) honours packed position ids in transformers 5:
# masking_utils' mask functions. sdpa and eager are tested on CPU here; the flash/flex kernels read
# the same position ids (transformers' own padding-free path) but are not tested by gluekit.
PACKED_ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flash_attention_4", "flex_attention")


@dataclass
class PackCollator:
    """One row per batch: ``input_ids``, ``labels``, ``position_ids`` of shape (1, total tokens).

    No attention_mask (its absence is what lets transformers build the block-causal mask from the
    position ids) and ``use_cache=False`` (a cache would switch that detection off; see the module
    docstring). The Trainer passes every key to ``model(**batch)``.
    """

    def __call__(self, features: list[dict]) -> dict:
        from transformers import DataCollatorWithFlattening

        batch = DataCollatorWithFlattening(return_tensors="pt")(features)
        batch["use_cache"] = False
        return batch


def packing_problem(model) -> str | None:
    """Why ``model`` cannot train on packed rows without cross-sample attention, or None if it can.

    Remote-code models (``THUDM/glm-4-9b-chat`` with trust_remote_code) build their own causal
    mask from the row alone and would let samples attend to each other without any error.
    """
    base = base_model(model)
    if not is_native(base):
        return (f"packing needs a model class from transformers itself, got {type(base).__name__} from {type(base).__module__} "
                "(remote code builds its own attention mask, so packed samples would attend to each other). "
                "Use the native checkpoint (e.g. THUDM/glm-4-9b-chat-hf) or set packing: false.")
    impl = getattr(base.config, "_attn_implementation", None)
    if impl not in PACKED_ATTENTION:
        return (f"packing needs one of the attention implementations {', '.join(PACKED_ATTENTION)}, got {impl!r}. "
                "Load the model with attn_implementation='sdpa' or set packing: false.")
    return None


__all__ = ["PackCollator", "packing_problem", "PACKED_ATTENTION"]
