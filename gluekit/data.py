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
"""
from __future__ import annotations

import dataclasses
import json
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

ROLES = ("system", "user", "assistant", "observation")
IGNORE_INDEX = -100  # label value PyTorch's cross-entropy skips
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


# ---------------------------------------------------------------- token ids

@dataclass(frozen=True)
class SpecialIds:
    """GLM-4's special token ids, looked up from the tokenizer (never hard-coded)."""

    gmask: int
    sop: int
    system: int
    user: int
    assistant: int
    observation: int
    eos: int

    @classmethod
    def of(cls, tokenizer) -> "SpecialIds":
        names = dict(gmask="[gMASK]", sop="<sop>", system="<|system|>", user="<|user|>",
                     assistant="<|assistant|>", observation="<|observation|>", eos="<|endoftext|>")
        ids = {}
        for key, tok in names.items():
            i = tokenizer.convert_tokens_to_ids(tok)
            if i is None or i == tokenizer.unk_token_id:
                raise DataError(f"the tokenizer has no {tok} token: it is not a GLM-4 tokenizer.")
            ids[key] = i
        return cls(**ids)

    @property
    def stop(self) -> list[int]:
        """Generation stops on any of these (GLM-4: endoftext, user, observation)."""
        return [self.eos, self.user, self.observation]


def _render(tokenizer, messages: list[dict], **kw) -> list[int]:
    # gluekit cuts long sequences itself and reports it (LengthReport), so the tokenizer's one-off
    # "Token indices sequence length is longer than ..." warning on stderr only misleads.
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned["sequence-length-is-longer-than-the-specified-maximum"] = True
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **kw))


def template_prefix(tokenizer) -> list[int]:
    """Tokens the template puts before the first message ([gMASK]<sop> in GLM-4).

    Found by rendering one user message and keeping what precedes its role token, so it works
    for any GLM-4-style template without knowing the ids.
    """
    user = SpecialIds.of(tokenizer).user
    ids = _render(tokenizer, [{"role": "user", "content": "x"}])
    return ids[:ids.index(user)]


# ---------------------------------------------------------------- training samples
#
# The reference renders and tokenises each conversation (combine: True) or each message
# (combine: False) with its own apply_chat_template call. :class:`_Encoder` gives the same tokens
# with fewer calls: the template and the tokeniser each run once per batch, and a message seen
# before is not rendered again (its tokens depend on the message alone).

def _tokenize(tokenizer, texts: list[str]) -> list[list[int]]:
    """What ``apply_chat_template(tokenize=True)`` does to rendered texts, for many texts at once.

    That is ``tokenizer(text, add_special_tokens=False)``; for a fast tokenizer with no truncation
    or padding preset it is exactly the Rust tokeniser's own batch call, without transformers'
    per-text wrapping (offsets, masks), which costs as much as the tokenising itself.
    """
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if (backend is not None and hasattr(backend, "encode_batch_fast") and backend.truncation is None
            and backend.padding is None
            and getattr(backend, "encode_special_tokens", False) == bool(getattr(tokenizer, "split_special_tokens", False))):
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):  # gluekit reports long sequences itself (see _render)
        warned["sequence-length-is-longer-than-the-specified-maximum"] = True
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _message_key(message: dict):
    """A hashable key equal only for messages that render alike; None where there is none."""
    items = tuple(message.items())
    if all(type(v) is str for _, v in items):
        return items
    try:
        return json.dumps(message, ensure_ascii=False)  # key order kept: a template may iterate keys
    except (TypeError, ValueError):
        return None


def _renders_messages_alone(template: str) -> bool:
    """Does a chat template render each message independently of the others?

    Yes where ``messages`` is used only by one top-level ``{% for m in messages %}`` without
    ``loop.*``, ``break``/``continue``, ``namespace()``, a loop filter or an ``else`` branch (Jinja
    resets ``set`` variables at every iteration), as in GLM-4's template. Then the whole chat renders
    as: what precedes the loop, each message's part, what follows the loop. Unsure -> False.
    """
    import jinja2
    from jinja2 import nodes

    try:
        ast = jinja2.Environment(trim_blocks=True, lstrip_blocks=True,
                                 extensions=["jinja2.ext.loopcontrols"]).parse(template)
    except jinja2.TemplateError:  # e.g. transformers' own {% generation %} tag: take the safe path
        return False
    uses = [n for n in ast.find_all(nodes.Name) if n.name == "messages"]
    loops = [n for n in ast.body if isinstance(n, nodes.For) and any(u is n.iter for u in uses)]
    if len(uses) != 1 or len(loops) != 1:
        return False
    (loop,) = loops
    names = {n.name for n in ast.find_all(nodes.Name)}
    return (not loop.else_ and loop.test is None and not loop.recursive and not {"loop", "namespace"} & names
            and not any(ast.find_all((nodes.Break, nodes.Continue))))


@dataclass
class _Block:
    """One message rendered alone, after the template's prefix (GLM-4: after ``[gMASK]<sop>``)."""

    ids: list[int]
    text: str | None  # its rendered text, or None where the render did not start with the prefix
    joins: bool       # starts with a special token that splits the text there (or renders nothing)
    reply: bool       # in the loss with combine: False (not system, user or observation)
    labels: dict[bool, list[int]] = field(default_factory=dict)  # by "was the token before it a target?"


@dataclass(frozen=True)
class _TemplateFacts:
    """What :class:`_Encoder` needs to know about a tokenizer and its chat template."""

    sp: SpecialIds
    prefix: list[int]           # tokens before the first message ([gMASK]<sop>)
    prefix_text: str | None     # their text; None where it cannot be split off at <|user|>
    splitters: tuple[str, ...]  # special tokens that split the text where they stand
    separable: bool             # a whole chat renders as the prefix + each message rendered alone


_FACTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> {template: facts}


def _template_facts(tokenizer) -> _TemplateFacts:
    """:class:`_TemplateFacts` of a tokenizer, worked out once per tokenizer and template."""
    template = tokenizer.get_chat_template()
    try:
        known = _FACTS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: work them out every time
        known = {}
    if template not in known:
        known[template] = _work_out_facts(tokenizer, template)
    return known[template]


def _work_out_facts(tokenizer, template: str) -> _TemplateFacts:
    sp = SpecialIds.of(tokenizer)
    # Text split at a special token is tokenised piece by piece, so messages rendered alone can
    # be joined as token lists, unless the token also swallows the spaces before it (lstrip) or
    # the tokenizer is told not to split on special tokens.
    splitters = () if getattr(tokenizer, "split_special_tokens", False) else tuple(
        t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
        if t.special and not t.lstrip and not t.single_word and not t.normalized)
    user = tokenizer.convert_ids_to_tokens(sp.user)
    probe = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    # the prefix's text; its tokens (template_prefix) were found by splitting at <|user|>
    prefix_text = probe[:probe.find(user)] if user in probe and user in splitters else None
    facts = _TemplateFacts(sp, template_prefix(tokenizer), prefix_text, splitters, False)
    if prefix_text is None or not _renders_messages_alone(template):
        return facts
    # Text after the message loop (an end-of-chat marker, say) would also break joining: try it.
    probe = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "22"}, {"role": "user", "content": "333"}]
    whole = tokenizer.apply_chat_template(probe, tokenize=False)
    blocks = _Encoder(tokenizer, True, facts)._render_alone(probe)
    joined = all(b.text is not None for b in blocks) and whole == prefix_text + "".join(b.text for b in blocks)
    return dataclasses.replace(facts, separable=joined)


class _Encoder:
    """GLM-4's ``process_batch`` for many conversations: same tokens, fewer template and tokeniser calls."""

    def __init__(self, tokenizer, combine: bool, facts: _TemplateFacts | None = None):
        self.tok, self.combine = tokenizer, combine
        self.blocks: dict[Any, _Block] = {}  # message key -> its tokens, rendered alone
        facts = facts or _template_facts(tokenizer)
        self.sp, self.prefix, self.prefix_text = facts.sp, facts.prefix, facts.prefix_text
        self.splitters, self.separable = facts.splitters, facts.separable

    def _render_alone(self, messages: list[dict]) -> list[_Block]:
        """Each message rendered and tokenised on its own, as the reference does with combine: False."""
        texts = self.tok.apply_chat_template([[m] for m in messages], tokenize=False) if messages else []
        out = []
        for m, text, ids in zip(messages, texts, _tokenize(self.tok, texts)):
            p = self.prefix_text
            body = text[len(p):] if p is not None and text.startswith(p) else None
            joins = body == "" or (body is not None and bool(self.splitters) and body.startswith(self.splitters))
            out.append(_Block(ids[len(self.prefix):], body, joins, m["role"] not in ("system", "user", "observation")))
        return out

    def _blocks_of(self, convs: list[list[dict]], keys: list[list]) -> list[list[_Block]]:
        """Every message's block: from the cache, else rendered in one batch (and cached if it has a key)."""
        todo = {}  # key -> message, first seen
        loose = []  # messages without a key, rendered each time
        for conv, ks in zip(convs, keys):
            for m, k in zip(conv, ks):
                if k is None:
                    loose.append(m)
                elif k not in self.blocks and k not in todo:
                    todo[k] = m
        self.blocks.update(zip(todo, self._render_alone(list(todo.values()))))
        fresh = iter(self._render_alone(loose))
        return [[self.blocks[k] if k is not None else next(fresh) for k in ks] for ks in keys]

    def encode(self, convs: list[list[dict]]) -> list[tuple[list[int], list[int]]]:
        """Conversations (messages already cleaned) -> (input_ids, labels), full length, uncut."""
        keys = [[_message_key(m) for m in conv] for conv in convs]
        if self.combine:
            return [self._last_reply(ids) for ids in self._whole(convs, keys)]
        return [self._per_message(bs) for bs in self._blocks_of(convs, keys)]

    def _per_message(self, blocks: list[_Block]) -> tuple[list[int], list[int]]:
        """combine: False: [gMASK]<sop> + each message's tokens; loss on replies, shifted right by one."""
        ids, labels, before = list(self.prefix), [IGNORE_INDEX] * len(self.prefix), False
        for b in blocks:
            if not b.ids:
                continue
            if before not in b.labels:  # token i is a target if token i-1 was in a reply
                b.labels[before] = ([b.ids[0]] if before else [IGNORE_INDEX]) + (
                    b.ids[1:] if b.reply else [IGNORE_INDEX] * (len(b.ids) - 1))
            ids += b.ids
            labels += b.labels[before]
            before = b.reply
        ids.append(self.sp.user)  # stop signal
        labels.append(self.sp.user if before else IGNORE_INDEX)
        return ids, labels

    def _whole(self, convs: list[list[dict]], keys: list[list]) -> list[list[int]]:
        """combine: True: tokens of each whole chat rendered at once.

        A chat whose messages are all cached or repeated in the batch is joined from its messages'
        tokens where that is the same: the template renders messages alone (else the whole render
        is compared with the joined texts) and each message starts at a splitting special token.
        Every other chat is rendered and tokenised whole (one call each for all of them).
        """
        seen = Counter(k for ks in keys for k in ks if k is not None)
        shared = [i for i, ks in enumerate(keys) if self.prefix_text is not None
                  and all(k is not None and (k in self.blocks or seen[k] > 1) for k in ks)]
        blocks = self._blocks_of([convs[i] for i in shared], [keys[i] for i in shared])
        texts = {} if self.separable else dict(zip(shared, self._render_whole([convs[i] for i in shared])))
        out: list[list[int] | None] = [None] * len(convs)
        for i, bs in zip(shared, blocks):
            if all(b.joins for b in bs) and (self.separable or texts[i] == self.prefix_text + "".join(b.text for b in bs)):
                ids = list(self.prefix)
                for b in bs:
                    ids += b.ids
                out[i] = ids
        redo = [i for i, ids in enumerate(out) if ids is None]
        missing = [i for i in redo if i not in texts]
        texts.update(zip(missing, self._render_whole([convs[i] for i in missing])))
        for i, ids in zip(redo, _tokenize(self.tok, [texts[i] for i in redo])):
            out[i] = ids
        return out

    def _render_whole(self, convs: list[list[dict]]) -> list[str]:
        return self.tok.apply_chat_template(convs, tokenize=False) if convs else []

    def _last_reply(self, ids: list[int]) -> tuple[list[int], list[int]]:
        a = self.sp.assistant
        if a not in ids:
            raise DataError("no <|assistant|> token after rendering: the conversation has no non-empty assistant reply.")
        last = len(ids) - 1 - ids[::-1].index(a)
        ids = ids + [self.sp.user]  # stop signal
        # the mask is "after the last <|assistant|>", shifted right by one: targets from last + 2
        return ids, [IGNORE_INDEX] * (last + 2) + ids[last + 2:]


def encode_conversation(messages: list[dict], tokenizer, combine: bool = True,
                        max_length: int | None = None) -> dict[str, list[int]]:
    """One conversation -> ``{"input_ids", "labels"}`` exactly as GLM-4's ``process_batch``.

    ``max_length`` (usually ``max_input_length + max_output_length + 1``) cuts both lists from the
    start; None keeps the full sequence. Labels are -100 where no loss is taken.
    """
    ((input_ids, labels),) = _Encoder(tokenizer, combine).encode([[clean_message(m) for m in messages]])
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
        history = _render(tokenizer, messages[:i]) if i else template_prefix(tokenizer)
        reply = _render(tokenizer, [messages[i]])[n:]  # <|assistant|> {metadata}\n content
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


def _conv_of(row: dict) -> list[dict]:
    return json.loads(row["conversation"]) if "conversation" in row else row["messages"]


BATCH = 1000  # conversations per template/tokeniser call (datasets.map's default batch size)


def _encode_rows(convs: list[list[dict]], tokenizer, combine: bool, max_length: int) -> dict[str, list]:
    """Cut samples, plus what the length report needs: full length and reply tokens cut away."""
    enc = _Encoder(tokenizer, combine)  # one message cache for all batches
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

    max_length = max_input_length + max_output_length + 1
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


def data_file(data_dir: str | Path, name: str | None) -> Path | None:
    """A ``data_config`` file name resolved against the data directory (as the reference does)."""
    if name is None:
        return None
    p = Path(name)
    return p if p.is_absolute() else Path(data_dir) / p
