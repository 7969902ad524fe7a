"""A coloured view of training samples: every token, the role it belongs to, and whether it is a target.

:func:`token_label_html` draws each sample (``{"input_ids", "labels"}``, as returned by
:func:`gluekit.encode_conversation`) as a row of chips laid out like the rendered chat text:

* background colour = the role of the message the token belongs to (set by the last role token seen;
  ``[gMASK]<sop>`` before the first role is "prefix");
* special tokens (``[gMASK]``, ``<|user|>`` ...) are dark chips with white text;
* a target (label != -100: the loss is taken on it) has a dark red border and bold text; a token
  without loss is faded;
* a newline token is drawn as ``↵`` and ends the line, so the view reads like the chat text.

Hover a chip to see its id and label (tooltips need a live notebook). Byte-level pieces that
are not whole UTF-8 characters show as ``�``.
"""
from __future__ import annotations

import html

from ..tokens import IGNORE_INDEX, SpecialIds

ROLE_COLOURS = {
    "prefix": "#e0e0e0",
    "system": "#d1c4e9",
    "user": "#bbdefb",
    "assistant": "#c8e6c9",
    "observation": "#ffe0b2",
}
TARGET_BORDER = "#b71c1c"


def token_roles(input_ids: list[int], tokenizer) -> list[str]:
    """The role each token belongs to: the last role token at or before it ("prefix" before any)."""
    sp = SpecialIds.of(tokenizer)
    role_of = {sp.system: "system", sp.user: "user", sp.assistant: "assistant", sp.observation: "observation"}
    roles, role = [], "prefix"
    for t in input_ids:
        role = role_of.get(t, role)
        roles.append(role)
    return roles


def _chip(text: str, token_id: int, label: int, role: str, special: bool) -> str:
    target = label != IGNORE_INDEX
    colours = "background:#37474f;color:#fff" if special else f"background:{ROLE_COLOURS[role]}"
    border = f"border:2px solid {TARGET_BORDER}" if target else "border:2px solid transparent;opacity:.6"
    body = f"<b>{html.escape(text)}</b>" if target else html.escape(text)
    return f'<span title="id {token_id}, label {label}" style="{colours};{border};white-space:pre;display:inline-block">{body}</span>'


def token_label_html(tokenizer, samples: dict[str, dict]):
    """An ``IPython.display.HTML`` with one block per sample: ``{title: {"input_ids", "labels"}}``.

    A legend comes first; each block is headed "title: N tokens, K targets".
    """
    from IPython.display import HTML

    special = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    legend = " ".join(f'<span style="background:{c}">{r}</span>' for r, c in ROLE_COLOURS.items())
    parts = ['<div style="font-family:monospace;line-height:1.8">',
             f'<div>roles: {legend} | <span style="background:#37474f;color:#fff">special token</span> | '
             f'<span style="border:2px solid {TARGET_BORDER}"><b>target</b></span> (label = the token) | '
             '<span style="opacity:.6">faded: label -100, no loss</span></div>']
    for title, sample in samples.items():
        ids, labels = list(sample["input_ids"]), list(sample["labels"])
        n_targets = sum(label != IGNORE_INDEX for label in labels)
        parts.append(f'<div style="margin-top:6px"><b>{html.escape(title)}</b>: {len(ids)} tokens, '
                     f'{n_targets} targets</div><div style="border:1px solid #ccc;padding:4px">')
        for token_id, label, role in zip(ids, labels, token_roles(ids, tokenizer)):
            text = tokenizer.decode([token_id])
            parts.append(_chip(text.replace("\n", "↵"), token_id, label, role, token_id in special))
            if text.endswith("\n"):
                parts.append("<br>")
        parts.append("</div>")
    parts.append("</div>")
    return HTML("".join(parts))
