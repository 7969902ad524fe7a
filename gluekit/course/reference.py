"""Two decisions of GLM-4's reference ``finetune.py`` that gluekit fixes, modelled from the documented facts.

The ``combine: True`` evaluation prompt (it still holds the answer) and the resume word ``no``
(it skips training). Notebooks put each next to gluekit's own behaviour.
"""
from __future__ import annotations

from pathlib import Path


def reference_eval_prompt(messages: list[dict], tokenizer, max_input_length: int) -> list[int]:
    """The eval prompt GLM-4's script builds with ``combine: True`` (a model of it, from the facts).

    It renders the WHOLE conversation, reply included, cuts it to ``max_input_length`` and appends
    the sequence's first token (``[gMASK]``) where ``<|assistant|>`` belongs.
    """
    from ..data import clean_message
    from ..tokens import render_ids

    ids = render_ids(tokenizer, [clean_message(m) for m in messages])
    return ids[:max_input_length] + ids[:1]


def reference_resume_action(word: str | None, output_dir: str | Path) -> str:
    """What GLM-4's ``finetune.py`` does with its 4th argument (a model of it, from the facts)."""
    from ..checkpoints import CHECKPOINT_RE

    if word is None or str(word).strip() == "":
        return "train fresh"
    out = Path(output_dir)
    if not out.is_dir():
        return "crash: FileNotFoundError (no output_dir)"
    steps = sorted(int(m.group(1)) for p in out.iterdir() if (m := CHECKPOINT_RE.match(p.name)))
    if str(word).upper() == "YES":
        return f"resume from checkpoint-{steps[-1]}" if steps else "train fresh"
    if str(word).isdigit() and int(word) > 0:
        return f"resume from checkpoint-{int(word)}"
    return "skip training (prints a message, trains nothing)"


def gluekit_resume_action(word: str | None, output_dir: str | Path) -> str:
    """The same decision by :func:`gluekit.checkpoints.resolve_resume` (never deletes: overwrite stays False)."""
    from ..errors import GluekitError
    from ..checkpoints import resolve_resume

    try:
        ck = resolve_resume(output_dir, word)
    except GluekitError as e:
        return "refuse: " + e.problems[0].split(". ")[0].split(": ", 1)[-1]
    return f"resume from {ck.name}" if ck is not None else "train fresh"
