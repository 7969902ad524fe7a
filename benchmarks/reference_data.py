"""The baseline of the data-preparation benchmark: GLM-4's reference ``process_batch``, restated.

What GLM-4's ``finetune_demo/finetune.py`` does to each conversation, per sample, in plain
Python lists, as recorded in ``/work/shared/reference/glm4-finetune-facts.md``:

* section "GLM-4 chat format": ``[gMASK]<sop>`` then ``<|role|>{metadata}\\n{content}`` per message;
  no end-of-turn token.
* section "``combine`` (the field most often misread)":
  ``combine: True`` renders the whole conversation with ONE ``apply_chat_template`` call and keeps
  the loss on the tokens after the LAST ``<|assistant|>``; ``combine: False`` renders EACH MESSAGE
  with its own ``apply_chat_template`` call, drops that call's ``[gMASK]<sop>`` and appends the rest
  after ``[gMASK]<sop>``, keeping the loss on every message whose role is not system, user or
  observation. Then ``<|user|>`` is appended as the stop signal and the mask is shifted right by one.
* section "Lengths": both lists are cut to ``max_input_length + max_output_length + 1`` tokens
  from the start (a prompt longer than that leaves zero label tokens; the reference keeps them).
* section "Data": a system message may carry ``tools``; with ``combine: False`` the reference's
  ``process_message`` drops ``None`` tool parameters and removes ``tools`` from other roles.

Two deliberate differences from the reference, neither of which changes a token:
the special ids are looked up from the tokenizer (:meth:`gluekit.tokens.SpecialIds.of`) instead of
being hard-coded as GLM-4-9B's 151331/151333/151336/151337, and ``process_message`` copies what it
changes instead of editing the caller's messages in place (the reference edits rows that
``datasets`` had just built for it; here the benchmark's conversations must stay intact).
"""
from __future__ import annotations

from gluekit.tokens import IGNORE_INDEX, SpecialIds


def process_message(message: dict) -> dict:
    """The reference's tool clean-up for ``combine: False`` (a copy where anything changes)."""
    if "tools" in message and message["role"] == "system":
        tools = []
        for tool in message["tools"]:
            fn = tool["function"]
            props = fn["parameters"]["properties"]
            fn = {**fn, "parameters": {**fn["parameters"], "properties": {k: v for k, v in props.items() if v is not None}}}
            tools.append({**tool, "function": fn})
        return {**message, "tools": tools}
    if "tools" in message:
        return {k: v for k, v in message.items() if k != "tools"}
    return message


def process_conversation(conv: list[dict], tokenizer, sp: SpecialIds, max_length: int,
                         combine: bool) -> tuple[list[int], list[int]]:
    """One conversation -> (input_ids, labels), the body of the reference's per-sample loop."""
    input_ids = [sp.gmask, sp.sop]
    loss_masks = [False, False]
    if combine:
        input_ids = tokenizer.apply_chat_template(conv, tokenize=True, return_dict=False)
        loss_masks = [False] * len(input_ids)
        last_assistant_index = len(input_ids) - input_ids[::-1].index(sp.assistant) - 1
        for j in range(last_assistant_index + 1, len(input_ids)):
            loss_masks[j] = True
    else:
        for message in conv:
            message = process_message(message)
            loss_mask_val = message["role"] not in ("system", "user", "observation")
            # [2:]: each single-message render starts again with [gMASK]<sop>
            new_input_ids = tokenizer.apply_chat_template([message], tokenize=True, return_dict=False)[2:]
            input_ids += new_input_ids
            loss_masks += [loss_mask_val] * len(new_input_ids)
    input_ids.append(sp.user)  # stop signal
    loss_masks = [False, *loss_masks]  # shift right by one
    labels = [t if mask else IGNORE_INDEX for t, mask in zip(input_ids, loss_masks)]
    return input_ids[:max_length], labels[:max_length]


def process_batch(batch: dict, tokenizer, max_input_length: int, max_output_length: int,
                  combine: bool) -> dict[str, list]:
    """``{"messages": [conv, ...]}`` -> ``{"input_ids": [...], "labels": [...]}`` like the reference."""
    sp = SpecialIds.of(tokenizer)
    max_length = max_input_length + max_output_length + 1
    out = {"input_ids": [], "labels": []}
    for conv in batch["messages"]:
        ids, labels = process_conversation(conv, tokenizer, sp, max_length, combine)
        out["input_ids"].append(ids)
        out["labels"].append(labels)
    return out
