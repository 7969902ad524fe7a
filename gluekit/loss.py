"""Label-only logits: the training loss without the logits that no label reads.

A causal LM projects every position onto the vocabulary (151,552 entries for GLM-4) and the loss
then ignores every position whose next token is masked with -100: the whole prompt, the padding
and, with ``combine: false``, the history. Those logits cost compute (the lm_head product and the
softmax) and memory (batch x length x vocabulary floats, kept for the backward pass) and change
nothing. transformers 5 models take ``logits_to_keep`` (a boolean mask keeps just those positions)
and ``shift_labels`` (the targets, already shifted); gluekit passes both, so the model computes the
same loss, ``ForCausalLMLoss`` (float32 logits, sum over targets / their count or the Trainer's
``num_items_in_batch``), over the same targets in the same order. Only float summation inside the
lm_head changes: ``tests/test_loss.py`` checks loss and gradients against the full-logits path.

Models without ``logits_to_keep`` (remote code such as ``THUDM/glm-4-9b-chat``) keep the ordinary
path: :func:`supports_label_only_logits` says which.
"""
from __future__ import annotations

from .tokens import IGNORE_INDEX
from .models import forward_accepts, is_native


def supports_label_only_logits(model) -> bool:
    """True when ``model`` (PEFT or DDP wrapped or not) is a transformers model whose forward takes
    ``logits_to_keep``, so a boolean mask of positions can select the logits to compute."""
    return is_native(model) and forward_accepts(model, "logits_to_keep")


def label_only_inputs(inputs: dict) -> dict:
    """``inputs`` for ``model(**inputs)`` with logits kept only where a label is predicted.

    Position t predicts token t+1, so the kept mask is the labels shifted left by one (the last
    position predicts nothing). ``labels`` becomes the flat targets (the model only checks that it
    is given), ``shift_labels`` the same targets for the loss.
    """
    import torch

    labels = inputs["labels"]
    shifted = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    keep = shifted != IGNORE_INDEX
    targets = shifted[keep]
    return {**inputs, "labels": targets, "shift_labels": targets, "logits_to_keep": keep}


__all__ = ["label_only_inputs", "supports_label_only_logits"]
