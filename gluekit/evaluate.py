"""Evaluation by generation: greedy replies for every eval prompt, then ROUGE/BLEU.

Prompts are sorted by length and grouped so each batch pads little, left-padded (the reply starts
where every row ends), and generation stops per row at any GLM-4 stop token; a batch ends as soon
as all its rows have stopped. A batch holds as many tokens as ``batch_size`` rows of the longest
prompt would, so short prompts share a batch with more rows (see :func:`plan_batches`). Leading
tokens that every prompt of a batch shares (a system prompt, a tool list) are computed once and
their KV cache reused by every row (transformers-native models).
"""
from __future__ import annotations

import json
from pathlib import Path

from .tokens import SpecialIds
from .fileio import atomic_write
from .metrics import compute_metrics
from .models import base_model, forward_accepts, is_native


def plan_batches(lengths: list[int], batch_size: int, max_new_tokens: int) -> list[list[int]]:
    """Prompt indices grouped into generation batches, longest prompts first.

    Every batch holds at most ``batch_size * (longest prompt + max_new_tokens)`` tokens, padding
    included: what ``batch_size`` rows of the longest prompt hold, so the cache and activations
    never outgrow a plain batch of ``batch_size`` (the memory ``per_device_eval_batch_size`` was
    chosen for), while rows of short prompts share a batch with more rows. A decoding step for 40
    rows costs far less than 10 steps for 4 (on a small model the per-step overhead dominates; a
    large one reads all its weights once per step), so fewer, fuller batches finish sooner.
    A prompt whose row (prompt + new tokens) is under half the widest row of its group starts a
    new group: padding it would more than double its cost. Each group is split into as few
    batches as the budget allows, of even size (no small left-over batch).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size`: must be at least 1, got {batch_size}.")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: ties keep their order
    if not order:
        return []
    budget = batch_size * (lengths[order[0]] + max_new_tokens)  # tokens per batch
    groups: list[list[int]] = []
    for i in order:
        if not groups or 2 * (lengths[i] + max_new_tokens) < lengths[groups[-1][0]] + max_new_tokens:
            groups.append([])
        groups[-1].append(i)
    batches = []
    for g in groups:
        rows_fit = max(1, budget // (lengths[g[0]] + max_new_tokens))
        n = -(-len(g) // rows_fit)  # ceil: the fewest batches that fit
        start = 0
        for k in range(n):  # sizes differ by at most one row, the larger ones first
            size = len(g) // n + (k < len(g) % n)
            batches.append(g[start:start + size])
            start += size
    return batches


def generate_replies(model, tokenizer, prompts: list[list[int]], generation_config=None,
                     batch_size: int = 16, max_new_tokens: int | None = None) -> list[str]:
    """Greedy replies for token-id prompts, returned in the prompts' order.

    ``batch_size``: rows per batch for the longest prompts; shorter prompts get more rows in the
    same number of tokens (:func:`plan_batches`). The default, 16, is the eval batch of GLM-4's
    ptuning_v2.yaml and sft.yaml (its lora.yaml says 4); on the tiny CPU model the 67 demo dev
    prompts took about 0.6x as long at 16 as at 4 (fewer sequential steps).
    """
    import copy

    import torch
    from transformers import GenerationConfig

    sp = SpecialIds.of(tokenizer)
    gen = copy.deepcopy(generation_config) if generation_config is not None else GenerationConfig()
    gen.do_sample = False
    gen.eos_token_id = sp.stop
    gen.pad_token_id = tokenizer.pad_token_id
    if max_new_tokens is not None:
        gen.max_new_tokens = max_new_tokens
    if gen.max_new_tokens is None:
        gen.max_new_tokens = 512
    # drop sampling knobs greedy decoding ignores (they only produce warnings)
    gen.temperature = gen.top_p = gen.top_k = None
    device = next(model.parameters()).device
    cache_arg = _cache_keyword(model, gen)
    out: list[str | None] = [None] * len(prompts)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for idx in plan_batches([len(p) for p in prompts], batch_size, gen.max_new_tokens):
            rows = [prompts[i] for i in idx]
            width = len(rows[0])  # the batch's longest prompt comes first
            shared = shared_prefix(rows) if cache_arg else 0
            cache = _prefix_cache(model, rows[0][:shared], len(rows), device) if shared else None
            if shared and cache is None:  # no shareable cache from this model: plain left padding from now on
                shared, cache_arg = 0, None
            ids, mask = pad_rows(rows, width, shared, tokenizer.pad_token_id)
            extra = {cache_arg: cache} if cache is not None else {}
            gen_ids = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=gen,
                                     **extra)
            for row, i in enumerate(idx):
                out[i] = tokenizer.decode(gen_ids[row, width:], skip_special_tokens=True).strip()
    model.train(was_training)
    return out


MIN_SHARED_PREFIX = 16
"""Tokens: a batch whose prompts share at least this many leading tokens computes them once."""


def shared_prefix(rows: list[list[int]]) -> int:
    """Leading tokens every prompt of a batch has in common (eval prompts often start with the
    same system prompt or tool list), leaving each prompt at least one token of its own; 0 when
    fewer than MIN_SHARED_PREFIX or a batch of one row."""
    if len(rows) < 2:
        return 0
    n = 0
    for column in zip(*rows):
        if any(t != column[0] for t in column):
            break
        n += 1
    n = min(n, min(len(r) for r in rows) - 1)
    return n if n >= MIN_SHARED_PREFIX else 0


def _cache_keyword(model, gen) -> str | None:
    """The keyword ``generate`` takes a ready KV cache by, or None where a shared prefix is not used.

    Only transformers' own model classes (not remote code, whose generation may number positions
    its own way) that take ``position_ids``: the rows are laid out [prefix][padding][rest], and the
    positions generate derives from the attention mask skip the padding. Greedy search only, with
    the default dynamic cache.
    """
    if not is_native(model) or getattr(base_model(model).config, "is_encoder_decoder", False):
        return None
    if (gen.num_beams or 1) > 1 or getattr(gen, "cache_implementation", None):
        return None
    if not forward_accepts(model, "position_ids"):
        return None
    return next((k for k in ("cache", "past_key_values") if forward_accepts(model, k)), None)  # "cache" from transformers 5.x


def _prefix_cache(model, prefix: list[int], rows: int, device):
    """The KV cache of ``prefix``, computed once and repeated for ``rows`` rows (None if not a Cache)."""
    import torch

    # the prefix's logits are never used: keep one position (GLM-4's vocabulary is 151,552 wide)
    keep = {"logits_to_keep": 1} if forward_accepts(model, "logits_to_keep") else {}
    out = model(input_ids=torch.tensor([prefix], device=device), use_cache=True, **keep)
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    if not hasattr(cache, "batch_repeat_interleave"):
        return None
    cache.batch_repeat_interleave(rows)
    return cache


def pad_rows(rows: list[list[int]], width: int, shared: int, pad_id: int):
    """(input_ids, attention_mask): each row is [first ``shared`` tokens][padding][the rest], so every
    prompt ends at ``width`` and generation starts there; ``shared=0`` is plain left padding."""
    import torch

    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, p in enumerate(rows):
        ids[r, :shared] = torch.tensor(p[:shared], dtype=torch.long)
        mask[r, :shared] = 1
        rest = p[shared:]
        ids[r, width - len(rest):] = torch.tensor(rest, dtype=torch.long)
        mask[r, width - len(rest):] = 1
    return ids, mask


def evaluate_rows(model, tokenizer, rows: list[dict], generation_config=None, batch_size: int = 16,
                  predictions_file: str | Path | None = None, shard: tuple[int, int] = (0, 1)
                  ) -> tuple[dict[str, float], list[str]]:
    """Generate for eval rows (from :func:`gluekit.data.build_eval_rows`) and score them.

    ``shard=(rank, world_size)``: under data parallelism each rank generates every world_size-th
    row (``batch_size`` is per device) and the replies are gathered, so every rank returns the
    metrics of the whole set. Returns ``(metrics, predictions)``; writes one JSON line per row to
    ``predictions_file`` if given.
    """
    rank, world = shard
    mine = generate_replies(model, tokenizer, [r["prompt_ids"] for r in rows[rank::world]], generation_config, batch_size)
    if world > 1:
        import torch.distributed as dist

        parts: list = [None] * world
        dist.all_gather_object(parts, mine)
        preds = [None] * len(rows)
        for r, part in enumerate(parts):
            preds[r::world] = part
    else:
        preds = mine
    metrics = compute_metrics(preds, [r["reference"] for r in rows])
    if predictions_file is not None:
        with atomic_write(predictions_file) as f:
            for r, p in zip(rows, preds):
                prompt = tokenizer.decode(r["prompt_ids"], skip_special_tokens=False)
                f.write(json.dumps({"line": r.get("line"), "turn": r.get("turn"), "prompt": prompt,
                                    "prediction": p, "reference": r["reference"]}, ensure_ascii=False) + "\n")
    return metrics, preds


__all__ = ["plan_batches", "generate_replies", "MIN_SHARED_PREFIX", "shared_prefix", "pad_rows", "evaluate_rows"]
