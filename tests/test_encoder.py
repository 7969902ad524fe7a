"""gluekit.encoder: the fast encoder gives the tokens of one apply_chat_template call per chat, with fewer calls."""
import copy

import pytest

from gluekit.encoder import Encoder, renders_messages_alone, template_facts
from gluekit.tokens import SpecialIds, render_ids

CHATS = [
    [{"role": "system", "content": "你是一个旅游助手。"}, {"role": "user", "content": "成都在哪个省份?"},
     {"role": "assistant", "content": "成都属于四川省。"}],
    [{"role": "user", "content": "成都在哪个省份?"}, {"role": "assistant", "content": "成都属于四川省。"},
     {"role": "user", "content": "那里有什么好吃的?"}, {"role": "assistant", "content": "担担面。"}],
]


def _marks_last_message(tok):
    """A copy of the tokenizer whose template marks the last message: messages no longer render alone."""
    other = copy.deepcopy(tok)
    other.chat_template = tok.chat_template.replace(
        "{% endfor %}{% if add_generation_prompt %}", "{% if loop.last %}<eop>{% endif %}{% endfor %}{% if add_generation_prompt %}")
    assert other.chat_template != tok.chat_template
    return other


def test_glm_template_renders_messages_alone(tok):
    assert renders_messages_alone(tok.chat_template)
    assert not renders_messages_alone(_marks_last_message(tok).chat_template)  # loop.* depends on the others
    assert not renders_messages_alone("{% for m in messages %}{{ m.content }}{% else %}none{% endfor %}")
    assert not renders_messages_alone("{% generation %}{{ messages }}{% endgeneration %}")  # unknown tag: unsure


def test_template_facts(tok):
    facts = template_facts(tok)
    sp = SpecialIds.of(tok)
    assert facts.prefix == [sp.gmask, sp.sop] and facts.prefix_text == "[gMASK]<sop>"
    assert facts.separable and "<|user|>" in facts.splitters
    assert template_facts(tok) is facts  # worked out once per tokenizer and template
    assert not template_facts(_marks_last_message(tok)).separable


@pytest.mark.parametrize("separable", [True, False])
def test_combine_true_equals_one_template_call_per_chat(tok, separable):
    t = tok if separable else _marks_last_message(tok)
    enc = Encoder(t, combine=True)
    assert enc.separable is separable
    batch = CHATS + CHATS  # repeated messages: joined from cached message tokens
    for (ids, labels), chat in zip(enc.encode(batch), batch):
        assert ids == render_ids(t, chat) + [SpecialIds.of(t).user]
        assert len(labels) == len(ids)
    assert len(enc.blocks) == len({(m["role"], m["content"]) for c in CHATS for m in c})  # each distinct message once


def test_combine_false_renders_each_message_once(tok):
    enc = Encoder(tok, combine=False)
    prefix = template_facts(tok).prefix
    (ids, _), _ = enc.encode(CHATS)
    alone = [render_ids(tok, [m])[len(prefix):] for m in CHATS[0]]
    assert ids == prefix + [t for part in alone for t in part] + [SpecialIds.of(tok).user]
    assert len(enc.blocks) == 5  # "成都在哪个省份?" and its reply are shared by both chats
