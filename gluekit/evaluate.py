"""Evaluation by generation: greedy replies for every eval prompt, then ROUGE/BLEU.

Prompts are sorted by length so each batch pads little, left-padded (the reply starts where
every row ends), and generation stops per row at any GLM-4 stop token.
"""
from __future__ import annotations

import json
from pathlib import Path

from .data import SpecialIds
from .metrics import compute_metrics


def generate_replies(model, tokenizer, prompts: list[list[int]], generation_config=None,
                     batch_size: int = 4, max_new_tokens: int | None = None) -> list[str]:
    """Greedy replies for token-id prompts, returned in the prompts' order."""
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
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[str | None] = [None] * len(prompts)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
                mask[row, width - len(prompts[i]):] = 1
            gen_ids = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=gen)
            for row, i in enumerate(idx):
                out[i] = tokenizer.decode(gen_ids[row, width:], skip_special_tokens=True).strip()
    model.train(was_training)
    return out


def evaluate_rows(model, tokenizer, rows: list[dict], generation_config=None, batch_size: int = 4,
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
        path = Path(predictions_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for r, p in zip(rows, preds):
                prompt = tokenizer.decode(r["prompt_ids"], skip_special_tokens=False)
                f.write(json.dumps({"line": r.get("line"), "turn": r.get("turn"), "prompt": prompt,
                                    "prediction": p, "reference": r["reference"]}, ensure_ascii=False) + "\n")
        tmp.replace(path)
    return metrics, preds
