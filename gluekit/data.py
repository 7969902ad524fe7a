"""Chat data: read and validate JSONL, then build GLM-4's training and evaluation samples.

Training samples reproduce GLM-4's ``finetune.py`` token for token:

* ``combine: True``  -> the whole chat is rendered by one chat-template call; loss on the tokens
  after the LAST ``<|assistant|>`` (the last reply) only.
* ``combine: False`` -> each message is rendered alone and appended after ``[gMASK]<sop>``; loss on
  every assistant message.
* Then ``<|user|>`` is appended as the stop signal and the loss mask is shifted right by one, so
  a role token ``<|assistant|>`` is never a target and the token after each reply (``<|user|>`` /
  ``<|observation|>``) is. Sequences are cut to ``max_input_length + max_output_length + 1``.

Evaluation samples fix the reference's ``combine: True`` bug (its prompt still held the answer).
The tokens come from :mod:`gluekit.encoder` (training samples, many at once) and
:mod:`gluekit.tokens` (special ids, one chat rendered).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config.schema import sequence_max_length
from .encoder import Encoder
from .errors import DataError
from .tokens import IGNORE_INDEX, SpecialIds, render_ids, template_prefix

ROLES = ("system", "user", "assistant", "observation")
MAX_REPORTED = 50  # problems listed per file before "... and N more"


# ---------------------------------------------------------------- reading and validation

# Role names from other chat formats, and what GLM-4 calls them.
ROLE_HINTS = {
    "tool": " (GLM-4 calls a tool result \"observation\")",
    "function": " (GLM-4 calls a tool result \"observation\")",
    "human": " (ShareGPT's \"human\" is GLM-4's \"user\")",
    "gpt": " (ShareGPT's \"gpt\" is GLM-4's \"assistant\")",
    "bot": " (write \"assistant\")",
    "model": " (Gemini's \"model\" is GLM-4's \"assistant\")",
    "developer": " (OpenAI's \"developer\" is GLM-4's \"system\")",
}


def check_conversation(obj: Any) -> list[str]:
    """Problems with one parsed JSONL line (empty list = valid)."""
    if not isinstance(obj, dict):
        hint = " (a JSON array: write one conversation object per line)" if isinstance(obj, list) else ""
        return [f"each line must be a JSON object like {{\"messages\": [...]}}, got {type(obj).__name__}{hint}"]
    if "messages" not in obj:
        extra = ""
        if {"instruction", "output", "prompt"} & set(obj):
            extra = " (this looks like an instruction/output record; convert it to messages)"
        elif "conversations" in obj:
            extra = " (this looks like ShareGPT's \"conversations\" with from/value; convert it to messages with role/content)"
        return [f"missing key \"messages\"{extra}; keys found: {sorted(obj)}"]
    msgs = obj["messages"]
    if not isinstance(msgs, list) or not msgs:
        got = "an empty list" if msgs == [] else type(msgs).__name__
        return [f"\"messages\" must be a non-empty list of {{\"role\", \"content\"}} objects, got {got}"]
    problems = []
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            problems.append(f"{where} must be an object with role and content, got {type(m).__name__}")
            continue
        role = m.get("role")
        if "role" not in m:
            keys = f"; keys found: {sorted(m)}" + (" (ShareGPT's from/value: rename to role/content)" if "from" in m else "")
            problems.append(f"{where} has no \"role\"{keys}")
        elif role not in ROLES:
            hint = ROLE_HINTS.get(role, "") if isinstance(role, str) else ""
            problems.append(f"{where}.role {role!r} is not one of {', '.join(ROLES)}{hint}")
        content = m.get("content")
        if not isinstance(content, str):
            if isinstance(content, list):
                problems.append(f"{where}.content must be a string, got list (content parts are not supported: join the text into one string)")
            elif content is None and "tool_calls" in m:
                problems.append(f"{where}.content must be a string, got NoneType (OpenAI tool_calls are not read: "
                                "GLM-4 writes the call as text, the tool name, a newline, then the JSON arguments)")
            else:
                problems.append(f"{where}.content must be a string, got {type(content).__name__}")
        if role == "system" and i != 0:
            problems.append(f"{where}: a system message must come first")
        tools = m.get("tools")
        if tools is not None and role != "system":
            problems.append(f"{where}: only the system message may carry \"tools\"")
        elif tools is not None and not isinstance(tools, list):
            problems.append(f"{where}.tools must be a list of tool definitions, got {type(tools).__name__}")
        if role == "observation" and (i == 0 or not isinstance(msgs[i - 1], dict) or msgs[i - 1].get("role") != "assistant"):
            problems.append(f"{where}: an observation (tool result) must follow an assistant tool call")
    if problems:
        return problems
    assistants = [m for m in msgs if m["role"] == "assistant"]
    if not assistants:
        problems.append("no assistant reply: nothing to learn from this conversation")
    elif not assistants[-1]["content"].strip():
        problems.append("the last assistant reply is empty (GLM-4's script crashes on it: '151337 is not in list')")
    elif msgs[-1]["role"] != "assistant":
        last = msgs[-1]["role"]
        problems.append(f"the conversation ends with {'an' if last == 'observation' else 'a'} {last} message after the last assistant reply "
                        "(with combine: true it would be trained as part of the reply); end it with the reply or drop the trailing turn")
    return problems


def _decode_problem(line: bytes, e: UnicodeDecodeError) -> str:
    try:
        line.decode("gb18030")
        return f"not UTF-8 (byte {e.start}); it reads as GBK/GB18030 (a Chinese Windows encoding): re-save the file as UTF-8"
    except UnicodeDecodeError:
        return f"not UTF-8 (byte {e.start}); re-save the file as UTF-8"


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a ``{"messages": [...]}`` JSONL file; raise one :class:`DataError` listing every bad line.

    Blank lines are skipped; a UTF-8 byte-order mark and Windows line ends are accepted. Each
    problem reads ``file:line: ...`` (1-based lines, blank lines counted).
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory; give a .jsonl file.")
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    raw = path.read_bytes()
    rows, problems = [], []
    first_line = None  # number of the first non-blank line
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if line.startswith(b"\xef\xbb\xbf"):  # a byte-order mark (also mid-file, where files were concatenated)
            line = line[3:]
        line = line.rstrip(b"\r")  # Windows line ends
        if not line.strip():
            continue
        if first_line is None:
            first_line = lineno
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(f"{path.name}:{lineno}: {_decode_problem(line, e)}")
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            if lineno == first_line and line.strip() in (b"[", b"{"):  # pretty-printed JSON, not JSONL
                problems = [f"{path.name}:{lineno}: the file is one JSON document spread over many lines, not JSON Lines; "
                            "write one {\"messages\": [...]} object per line"]
                break
            msg = f"{e.msg} column {e.colno}" if e.msg.endswith(" at") else e.msg  # "Unterminated string starting at"
            problems.append(f"{path.name}:{lineno}: invalid JSON at column {e.colno}: {msg}")
            continue
        found = check_conversation(obj)
        for p in found:
            problems.append(f"{path.name}:{lineno}: {p}")
        if not found:
            rows.append({"messages": obj["messages"], "line": lineno})
    if problems:
        shown = problems[:MAX_REPORTED]
        if len(problems) > MAX_REPORTED:
            shown.append(f"... and {len(problems) - MAX_REPORTED} more")
        raise DataError(shown, str(path.name), total=len(problems))
    if not rows:
        raise DataError(f"{path.name}: no conversations (the file is empty).")
    return rows


def clean_message(message: dict) -> dict:
    """Drop keys whose value is None: ``datasets`` adds ``tools: None`` (and ``metadata: None``) to every
    message when it unifies a JSON schema, and a chat template that tests ``tools is defined`` breaks."""
    return {k: v for k, v in message.items() if v is not None}


# ---------------------------------------------------------------- training samples

def encode_conversation(messages: list[dict], tokenizer, combine: bool = True,
                        max_length: int | None = None) -> dict[str, list[int]]:
    """One conversation -> ``{"input_ids", "labels"}`` exactly as GLM-4's ``process_batch``.

    ``max_length`` (usually :func:`sequence_max_length`) cuts both lists from the
    start; None keeps the full sequence. Labels are -100 where no loss is taken.
    """
    ((input_ids, labels),) = Encoder(tokenizer, combine).encode([[clean_message(m) for m in messages]])
    if max_length is not None:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {"input_ids": input_ids, "labels": labels}


# ---------------------------------------------------------------- evaluation samples

def eval_examples(messages: list[dict], tokenizer, combine: bool, max_input_length: int,
                  max_output_length: int) -> list[dict[str, Any]]:
    """Prompts to generate from, with their reference replies.

    prompt = the conversation before the reply, cut to ``max_input_length`` tokens, then
    ``<|assistant|>``; reference = the reply, cut to ``max_output_length`` tokens. One sample per
    assistant turn with ``combine: False``; the last reply only with ``combine: True``.
    (GLM-4's script, with ``combine: True``, left the answer inside the prompt.)
    """
    sp = SpecialIds.of(tokenizer)
    messages = [clean_message(m) for m in messages]
    n = len(template_prefix(tokenizer))
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant" and m["content"]]
    if combine:
        turns = turns[-1:]
    out = []
    for i in turns:
        history = render_ids(tokenizer, messages[:i]) if i else template_prefix(tokenizer)
        reply = render_ids(tokenizer, [messages[i]])[n:]  # <|assistant|> {metadata}\n content
        reply_ids = reply[1:][:max_output_length]
        out.append({
            "prompt_ids": history[:max_input_length] + [sp.assistant],
            "reference_ids": reply_ids,
            "reference": tokenizer.decode(reply_ids, skip_special_tokens=True).strip(),
            "turn": i,
        })
    return out


# ---------------------------------------------------------------- data sets and reports

@dataclass
class LengthReport:
    """What the length limits did to a data set (all counts in tokens)."""

    max_length: int
    lengths: list[int] = field(default_factory=list)
    """Full tokens per sample, before the cut."""
    truncated: int = 0
    """Samples longer than ``max_length``."""
    label_tokens: int = 0
    """Reply tokens kept as targets."""
    label_tokens_lost: int = 0
    """Reply tokens cut away."""
    empty: list[int] = field(default_factory=list)
    """Source lines left with zero label tokens (dropped or raised, never trained silently)."""

    def summary(self) -> str:
        n = len(self.lengths)
        longest = max(self.lengths, default=0)
        return (f"{n} samples, longest {longest} tokens (limit {self.max_length}); "
                f"{self.truncated} cut, {self.label_tokens_lost} of "
                f"{self.label_tokens + self.label_tokens_lost} reply tokens lost; "
                f"{len(self.empty)} with no reply token left")


BATCH = 1000  # conversations per template/tokeniser call (datasets.map's default batch size)


def _encode_rows(convs: list[list[dict]], tokenizer, combine: bool, max_length: int) -> dict[str, list]:
    """Cut samples, plus what the length report needs: full length and reply tokens cut away."""
    enc = Encoder(tokenizer, combine)  # one message cache for all batches
    out = {"input_ids": [], "labels": [], "length": [], "lost": []}
    for start in range(0, len(convs), BATCH):
        batch = [[clean_message(m) for m in conv] for conv in convs[start:start + BATCH]]
        for ids, labels in enc.encode(batch):
            tail = labels[max_length:]
            out["input_ids"].append(ids[:max_length])
            out["labels"].append(labels[:max_length])
            out["length"].append(len(ids))
            out["lost"].append(len(tail) - tail.count(IGNORE_INDEX))
    return out


def _encode_in_processes(rows: list[dict], tokenizer, combine: bool, max_length: int, num_proc: int) -> dict[str, list]:
    """:func:`_encode_rows` in ``num_proc`` processes through ``datasets.map``."""
    import datasets

    # Conversations travel as JSON strings: Arrow would otherwise unify message schemas (tools: None).
    ds = datasets.Dataset.from_dict({"conversation": [json.dumps(r["messages"], ensure_ascii=False) for r in rows]})

    def encode(batch):
        return _encode_rows([json.loads(c) for c in batch["conversation"]], tokenizer, combine, max_length)

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a "Map: 100%" bar on stderr per call is noise in notebooks
    try:
        ds = ds.map(encode, batched=True, batch_size=BATCH, num_proc=num_proc, remove_columns=["conversation"])
    finally:
        if bars:
            datasets.enable_progress_bars()
    return ds.to_dict()


def build_train_dataset(rows: list[dict], tokenizer, combine: bool, max_input_length: int,
                        max_output_length: int, num_proc: int | None = None,
                        on_empty: str = "drop", source: str = "train"):
    """Tokenise conversations (from :func:`read_jsonl`) into a ``datasets.Dataset`` of input_ids/labels.

    Returns ``(dataset, LengthReport)``. Samples whose reply was cut away entirely are dropped and
    counted (``on_empty="drop"``) or raise (``on_empty="raise"``): a sample with no target yields a
    NaN loss. ``num_proc`` > 1 tokenises in that many processes (same result).
    """
    from datasets import Dataset

    max_length = sequence_max_length(max_input_length, max_output_length)
    if num_proc and num_proc > 1:
        enc = _encode_in_processes(rows, tokenizer, combine, max_length, num_proc)
    else:
        enc = _encode_rows([r["messages"] for r in rows], tokenizer, combine, max_length)
    lines = [r.get("line", i + 1) for i, r in enumerate(rows)]
    report = LengthReport(max_length=max_length, lengths=enc["length"])
    report.truncated = sum(n > max_length for n in report.lengths)
    report.label_tokens_lost = sum(enc["lost"])
    n_labels = [len(lab) - lab.count(IGNORE_INDEX) for lab in enc["labels"]]
    report.label_tokens = sum(n_labels)
    report.empty = [ln for ln, n in zip(lines, n_labels) if n == 0]
    if report.empty and on_empty == "raise":
        raise DataError([f"{source}:{ln}: no reply token survives the cut to {max_length} tokens "
                         f"(max_input_length + max_output_length + 1); raise the limits or shorten it"
                         for ln in report.empty[:MAX_REPORTED]], source, total=len(report.empty))
    keep = [i for i, n in enumerate(n_labels) if n]
    if not keep:  # built from every sample, so the columns keep their integer types
        return Dataset.from_dict({k: enc[k] for k in ("input_ids", "labels")}).select([]), report
    return Dataset.from_dict({k: [enc[k][i] for i in keep] for k in ("input_ids", "labels")}), report


def build_eval_rows(rows: list[dict], tokenizer, combine: bool, max_input_length: int,
                    max_output_length: int) -> list[dict]:
    """Every eval sample of a file: dicts with prompt_ids, reference(_ids), line and turn."""
    out = []
    for r in rows:
        for ex in eval_examples(r["messages"], tokenizer, combine, max_input_length, max_output_length):
            out.append({**ex, "line": r.get("line")})
    return out


def count_eval_samples(rows: list[dict], combine: bool, generates: bool = True) -> int:
    """How many eval samples a file gives, without a tokenizer: with generation one per assistant
    reply (``combine: False``) or per conversation with a reply (``combine: True``), as
    :func:`build_eval_rows`; for the eval loss one per conversation, as :func:`build_train_dataset`
    (before any sample the length limits empty is dropped)."""
    if not generates:
        return len(rows)
    replies = [sum(m.get("role") == "assistant" and bool(m.get("content")) for m in r["messages"]) for r in rows]
    return sum(min(n, 1) if combine else n for n in replies)


def eval_subset(n: int, k: int | None, seed: int) -> list[int]:
    """Indices of the eval samples each evaluation during training scores (``eval_samples: k``).

    A fixed random ``k`` of ``n``, in file order, drawn once with ``seed`` (``training_args.seed``),
    so every evaluation scores the same samples and the scores are comparable step to step. All
    ``n`` when ``k`` is None or not smaller.
    """
    import random

    if k is None or k >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))


def data_file(data_dir: str | Path, name: str | None) -> Path | None:
    """A ``data_config`` file name resolved against the data directory (as the reference does)."""
    if name is None:
        return None
    p = Path(name)
    return p if p.is_absolute() else Path(data_dir) / p
