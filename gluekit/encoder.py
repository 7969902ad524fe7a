"""The fast encoder: GLM-4's ``process_batch`` samples for many conversations, same tokens, fewer calls.

The reference renders and tokenises each conversation (``combine: True``) or each message
(``combine: False``) with its own ``apply_chat_template`` call. :class:`Encoder` gives the same
tokens with fewer calls: the template and the tokeniser each run once per batch, and a message seen
before is not rendered again (its tokens depend on the message alone).

To join messages rendered alone it must know a few facts about the tokenizer and its chat template
(:class:`TemplateFacts`): the prefix before the first message, which special tokens split the text,
and whether the template renders each message independently (read from the template's Jinja syntax
tree, then tried on a probe chat). Facts are worked out once per tokenizer and template. Where a
fact is unsure, the encoder takes the exact slow path (the whole chat rendered at once).
"""
from __future__ import annotations

import dataclasses
import json
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .errors import DataError
from .tokens import IGNORE_INDEX, NO_LENGTH_WARNING, SpecialIds, template_prefix


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
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False, **NO_LENGTH_WARNING)["input_ids"]]


def _message_key(message: dict):
    """A hashable key equal only for messages that render alike; None where there is none."""
    items = tuple(message.items())
    if all(type(v) is str for _, v in items):
        return items
    try:
        return json.dumps(message, ensure_ascii=False)  # key order kept: a template may iterate keys
    except (TypeError, ValueError):
        return None


def renders_messages_alone(template: str) -> bool:
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
class TemplateFacts:
    """What :class:`Encoder` needs to know about a tokenizer and its chat template."""

    sp: SpecialIds
    prefix: list[int]           # tokens before the first message ([gMASK]<sop>)
    prefix_text: str | None     # their text; None where it cannot be split off at <|user|>
    splitters: tuple[str, ...]  # special tokens that split the text where they stand
    separable: bool             # a whole chat renders as the prefix + each message rendered alone


_FACTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> {template: facts}


def template_facts(tokenizer) -> TemplateFacts:
    """:class:`TemplateFacts` of a tokenizer, worked out once per tokenizer and template."""
    template = tokenizer.get_chat_template()
    try:
        known = _FACTS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: work them out every time
        known = {}
    if template not in known:
        known[template] = _work_out_facts(tokenizer, template)
    return known[template]


def _work_out_facts(tokenizer, template: str) -> TemplateFacts:
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
    facts = TemplateFacts(sp, template_prefix(tokenizer), prefix_text, splitters, False)
    if prefix_text is None or not renders_messages_alone(template):
        return facts
    # Text after the message loop (an end-of-chat marker, say) would also break joining: try it.
    probe = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "22"}, {"role": "user", "content": "333"}]
    whole = tokenizer.apply_chat_template(probe, tokenize=False)
    blocks = Encoder(tokenizer, True, facts)._render_alone(probe)
    joined = all(b.text is not None for b in blocks) and whole == prefix_text + "".join(b.text for b in blocks)
    return dataclasses.replace(facts, separable=joined)


class Encoder:
    """GLM-4's ``process_batch`` for many conversations: same tokens, fewer template and tokeniser calls."""

    def __init__(self, tokenizer, combine: bool, facts: TemplateFacts | None = None):
        self.tok, self.combine = tokenizer, combine
        self.blocks: dict[Any, _Block] = {}  # message key -> its tokens, rendered alone
        facts = facts or template_facts(tokenizer)
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
