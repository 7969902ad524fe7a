"""Data preparation: GLM-4's reference ``process_batch`` against gluekit's ``build_train_dataset``.

Both turn the same synthetic multi-turn conversations into ``input_ids``/``labels`` with the tiny
GLM tokenizer, for ``combine: True`` and ``combine: False``. gluekit's side is everything it does
to a conversation before training: validation (:func:`gluekit.data.check_conversation`), template,
tokenisation, masks, length report, ``datasets.Dataset`` (:func:`gluekit.data.build_train_dataset`).
The baseline is :mod:`benchmarks.reference_data`, called on batches of 1,000 conversations as
``datasets.map`` would, but on plain Python lists (no Arrow round trip, which would only slow the
baseline down). Outputs are compared sample by sample; gluekit drops samples left with no label
token (documented in ``build_train_dataset``), so those are dropped from the reference's output
before comparing.

The conversations are joined from the demo's generator, so messages repeat (the same system
prompt, tool list and many questions), as in real data sets built from templates; gluekit renders
a repeated message once. The same comparison on conversations whose every message is unique is
measured too (``details["unique_messages"]``): there both sides pay for the same template
renders, and only batching is left to gluekit.
"""
from __future__ import annotations

import os
import random

from gluekit.data import build_train_dataset, check_conversation
from gluekit.tokens import IGNORE_INDEX
from gluekit.demo import make_conversation

from .common import Row, interleaved
from .reference_data import process_batch

SEED = 7
N_FULL, N_QUICK = 20_000, 500
N_UNIQUE_FULL = 5_000  # the unique-message variant: only reported in details, so fewer conversations
MAX_INPUT, MAX_OUTPUT = 256, 64  # tokens, as configs/tiny.yaml; the longest chats get cut (the cut is compared too)
BATCH = 1000  # conversations per process_batch call (datasets.map's default batch size)
EXTRA = {"notes": "Conversations/s of the whole preparation step (validation, template, tokens, masks, "
                  "data set); the baseline restates GLM-4's finetune.py process_batch "
                  "(benchmarks/reference_data.py). Demo-style data repeats messages, which gluekit renders once."}


def make_conversations(n: int, seed: int = SEED) -> list[list[dict]]:
    """``n`` multi-turn chats: 1 to 4 demo chats joined, one system message (with tools if any
    joined chat calls the weather tool) first, then their user/assistant/observation turns."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [make_conversation(rng)["messages"] for _ in range(rng.randint(1, 4))]
        systems = [m for p in parts for m in p if m["role"] == "system"]
        systems.sort(key=lambda m: "tools" not in m)  # a tool list first: tool calls need it
        turns = [m for p in parts for m in p if m["role"] != "system"]
        out.append(systems[:1] + turns)
    return out


def unique_messages(convs: list[list[dict]]) -> list[list[dict]]:
    """The same chats with a running number appended to every non-empty message: no message repeats."""
    n, out = 0, []
    for conv in convs:
        new = []
        for m in conv:
            n += 1
            new.append({**m, "content": f"{m['content']} {n}"} if m["content"] else m)
        out.append(new)
    return out


def reference(convs: list[list[dict]], tokenizer, combine: bool) -> list[tuple[list[int], list[int]]]:
    """The baseline: process_batch over the conversations in batches of ``BATCH``."""
    out = []
    for i in range(0, len(convs), BATCH):
        b = process_batch({"messages": convs[i:i + BATCH]}, tokenizer, MAX_INPUT, MAX_OUTPUT, combine)
        out += zip(b["input_ids"], b["labels"])
    return out


def gluekit_path(convs: list[list[dict]], tokenizer, combine: bool):
    """gluekit: validate every conversation, then build the training data set (a ``datasets.Dataset``)."""
    rows = []
    for i, conv in enumerate(convs):
        problems = check_conversation({"messages": conv})
        if problems:
            raise ValueError(f"benchmark conversation {i} is invalid: {problems}")
        rows.append({"messages": conv, "line": i + 1})
    ds, _ = build_train_dataset(rows, tokenizer, combine, MAX_INPUT, MAX_OUTPUT)
    return ds


def samples(ds) -> list[tuple[list[int], list[int]]]:
    """A data set's (input_ids, labels) pairs (outside the timing: the reference's output is lists)."""
    return list(zip(ds["input_ids"], ds["labels"]))


def compare(ref: list, glue: list) -> dict:
    """Identical outputs? The reference's zero-label samples are dropped first, as gluekit does."""
    kept = [s for s in ref if any(t != IGNORE_INDEX for t in s[1])]
    same = len(kept) == len(glue) and all(list(a[0]) == list(b[0]) and list(a[1]) == list(b[1])
                                          for a, b in zip(kept, glue))
    return {"same": same, "samples": len(ref), "zero_label_dropped": len(ref) - len(kept),
            "at_length_limit": sum(len(s[0]) == MAX_INPUT + MAX_OUTPUT + 1 for s in ref)}


def check_outputs(convs: list[list[dict]], tokenizer, combine: bool) -> dict:
    """One untimed run of both sides, compared (what the test asserts)."""
    return compare(reference(convs, tokenizer, combine), samples(gluekit_path(convs, tokenizer, combine)))


def measure(convs: list[list[dict]], tokenizer, combine: bool, repeats: int) -> dict:
    """Outputs compared (this run also warms both sides up), then interleaved timings."""
    cmp = check_outputs(convs, tokenizer, combine)
    secs = interleaved({"reference": lambda: reference(convs, tokenizer, combine),
                        "gluekit": lambda: gluekit_path(convs, tokenizer, combine)}, repeats=repeats, warmup=0)
    n = len(convs)
    return {**cmp, "seconds": secs, "reference_per_s": n / secs["reference"], "gluekit_per_s": n / secs["gluekit"],
            "ratio": secs["reference"] / secs["gluekit"]}


def run(quick: bool = False) -> list[Row]:
    from gluekit.models import load_tokenizer

    tok = load_tokenizer()
    n = N_QUICK if quick else N_FULL
    repeats = 1 if quick else 3
    convs = make_conversations(n)
    unique = unique_messages(make_conversations(N_QUICK if quick else N_UNIQUE_FULL, seed=SEED + 1))
    rows = []
    for combine in (True, False):
        m = measure(convs, tok, combine, repeats)
        u = measure(unique, tok, combine, repeats)
        rows.append(Row(
            name=f"data preparation, combine={combine}",
            baseline="GLM-4 finetune.py process_batch (restated)",
            metric="conversations/s", baseline_value=m["reference_per_s"], gluekit_value=m["gluekit_per_s"],
            ratio=m["ratio"], target=">= 2x", met=m["ratio"] >= 2, same_output=m["same"] and u["same"],
            notes=(f"{n} conversations, {m['at_length_limit']} at the {MAX_INPUT + MAX_OUTPUT + 1}-token limit, "
                   f"{m['zero_label_dropped']} left with no label token (gluekit drops them); "
                   f"with no repeated message ({len(unique)} conversations): {u['ratio']:.2f}x"),
            details={**m, "unique_messages": u, "max_input_length": MAX_INPUT, "max_output_length": MAX_OUTPUT,
                     "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM")},
        ))
    return rows
