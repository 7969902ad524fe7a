"""GLM-4 chats as tokens: the special token ids, the label value the loss skips, a chat rendered to ids.

Shared by the data builders (:mod:`gluekit.data`), the fast encoder (:mod:`gluekit.encoder`),
evaluation and the token views, so that each of them looks the ids up from the tokenizer the same
way and renders through the same chat-template call.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import DataError

IGNORE_INDEX = -100  # label value PyTorch's cross-entropy skips

# gluekit cuts long sequences itself and reports it (LengthReport), so the tokenizer's one-off
# "Token indices sequence length is longer than ..." warning on stderr only misleads. The
# tokenizer's own ``verbose=False`` leaves it unsaid (and leaves the tokenizer unchanged).
NO_LENGTH_WARNING = {"verbose": False}


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


def render_ids(tokenizer, messages: list[dict], **kw) -> list[int]:
    """The token ids ``apply_chat_template(messages, tokenize=True)`` gives (one chat, a plain list)."""
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, tokenizer_kwargs=NO_LENGTH_WARNING, **kw))


def template_prefix(tokenizer) -> list[int]:
    """Tokens the template puts before the first message ([gMASK]<sop> in GLM-4).

    Found by rendering one user message and keeping what precedes its role token, so it works
    for any GLM-4-style template without knowing the ids.
    """
    user = SpecialIds.of(tokenizer).user
    ids = render_ids(tokenizer, [{"role": "user", "content": "x"}])
    return ids[:ids.index(user)]

