"""gluekit.tokens: special ids from the tokenizer, a chat rendered to ids, the template's prefix."""
import pytest

from gluekit.errors import DataError
from gluekit.tokens import IGNORE_INDEX, SpecialIds, render_ids, template_prefix


def test_special_ids_come_from_the_tokenizer(tok):
    sp = SpecialIds.of(tok)
    assert tok.convert_ids_to_tokens([sp.gmask, sp.sop, sp.user]) == ["[gMASK]", "<sop>", "<|user|>"]
    assert template_prefix(tok) == [sp.gmask, sp.sop]
    assert sp.stop == [sp.eos, sp.user, sp.observation]
    assert IGNORE_INDEX == -100  # what torch.nn.CrossEntropyLoss skips by default


def test_render_ids_is_apply_chat_template_as_a_list(tok):
    chat = [{"role": "user", "content": "成都在哪个省份?"}, {"role": "assistant", "content": "四川省。"}]
    ids = render_ids(tok, chat)
    assert type(ids) is list and ids == list(tok.apply_chat_template(chat, tokenize=True, return_dict=False))
    assert ids[:2] == template_prefix(tok)


def test_a_tokenizer_without_glm_tokens_is_a_data_error():
    class NoGlm:  # a tokenizer that knows none of GLM-4's special tokens
        unk_token_id = 0

        def convert_tokens_to_ids(self, token):
            return 0

    with pytest.raises(DataError, match=r"the tokenizer has no \[gMASK\] token: it is not a GLM-4 tokenizer"):
        SpecialIds.of(NoGlm())
