"""The embedded tiny GLM: a GLM-4-style tokenizer and a randomly initialised native ``GlmForCausalLM``.

What it is: transformers' own GLM class (``model_type: glm``, the class of ``glm-4-9b-chat-hf``,
same module names: ``q_proj/k_proj/v_proj/o_proj/gate_up_proj/down_proj``) shrunk to about 2.4M
parameters, with a byte-level BPE tokenizer that carries GLM-4's special tokens and chat format.
What it is not: a language model. Its weights are random; it knows nothing until LoRA teaches it
the demo task, and it cannot chat about anything else.

The tokenizer is shipped (``assets/tiny-glm/``, rebuilt byte for byte by :func:`build_tokenizer`);
the weights are built from a seed on first use and cached, then loaded with ``from_pretrained``
like any real model.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
TOKENIZER_DIR = ASSETS / "tiny-glm"
DEMO_DIR = ASSETS / "demo"

# GLM-4's special tokens, in GLM-4's order (ids follow the BPE vocabulary, as in GLM-4).
SPECIAL_TOKENS = (
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
)
# GLM-4's format: [gMASK]<sop>, then <|role|>{metadata}\n{content} for each message with content;
# a system message with tools first renders a tool list. Like GLM-4's own template it tests
# `tools is defined`, so a `tools: None` key added by datasets' schema unification breaks it.
CHAT_TEMPLATE = (
    "[gMASK]<sop>"
    "{% for item in messages %}"
    "{% if item['tools'] is defined %}<|system|>\n# 可用工具 (available tools)"
    "{% for tool in item['tools'] %}{% if tool['type'] == 'function' %}\n\n## {{ tool['function']['name'] }}\n\n"
    "{{ tool['function'] | tojson }}{% endif %}{% endfor %}"
    "\n\n调用工具时, 先写工具名, 换行后写 JSON 参数。{% endif %}"
    "{% if item['content'] %}<|{{ item['role'] }}|>{{ item['metadata'] if item['metadata'] is defined else '' }}\n"
    "{{ item['content'] }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
VOCAB_SIZE = 8000  # BPE merges: common Chinese words, demo phrases, JSON pieces
MODEL_SEED = 0
MODEL_SHAPE = dict(  # a GLM-4-9B-chat shape divided down: 2 kv groups, RMSNorm, untied output layer
    hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=32, max_position_embeddings=2048, initializer_range=0.1,
)


def _corpus() -> list[str]:
    """Text the BPE is trained on, so tokens look like a Chinese LLM's (words, ~2 characters a token).

    The 20,000 most frequent words of jieba's dictionary (each repeated log10(frequency) times,
    one word per line so merges stay inside words), the demo's names, punctuation and digits.
    """
    import math

    import jieba

    from .demo import CITIES, WEATHERS

    rows = []
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as f:
        for line in f:
            word, freq, *_ = line.split()
            rows.append((-int(freq), word))
    rows.sort()
    lines = []
    for neg_freq, word in rows[:20_000]:
        lines += [word] * max(1, int(math.log10(-neg_freq)))
    # The demo's names, one per line like the words (whole demo sentences would merge into
    # single tokens such as "今天小雪", and the model could no longer copy "小雪" from a tool result).
    names = set(WEATHERS) | set(CITIES) | {w for v in CITIES.values() for w in v if w}
    names |= {"get_weather", "city", "weather", "type", "function", "string", "object"}
    lines += sorted(names) * 5
    lines += ["，。?!:;、“”‘’()《》「」-+*/=%0123456789", "# 可用工具 (available tools)", "调用工具时, 先写工具名, 换行后写 JSON 参数。"] * 20
    return lines


def build_tokenizer(out_dir: str | Path = TOKENIZER_DIR):
    """Train the byte-level BPE and save a ``PreTrainedTokenizerFast`` with GLM-4's specials and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, min_frequency=1, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[],
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        padding_side="left", chat_template=CHAT_TEMPLATE, model_max_length=MODEL_SHAPE["max_position_embeddings"],
    )
    fast.save_pretrained(str(out_dir))
    return fast


def cache_root() -> Path:
    return Path(os.environ.get("GLUEKIT_CACHE", Path.home() / ".cache" / "gluekit"))


def _fingerprint() -> str:
    h = hashlib.sha256(json.dumps([MODEL_SHAPE, MODEL_SEED], sort_keys=True).encode())
    for f in sorted(TOKENIZER_DIR.iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


def tiny_model_dir() -> Path:
    """Directory holding the tiny GLM (weights built once from MODEL_SEED, tokenizer copied)."""
    out = cache_root() / f"tiny-glm-{_fingerprint()}"
    if (out / "model.safetensors").is_file():
        return out
    import shutil
    import tempfile

    import torch
    from transformers import AutoTokenizer, GlmConfig, GlmForCausalLM

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    ids = tok.convert_tokens_to_ids
    config = GlmConfig(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id,
        eos_token_id=[ids("<|endoftext|>"), ids("<|user|>"), ids("<|observation|>")],
        tie_word_embeddings=False, **MODEL_SHAPE,
    )
    torch.manual_seed(MODEL_SEED)
    model = GlmForCausalLM(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build in a temporary folder and rename, so a killed build never leaves a half-written model.
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".building-"))
    from .quiet import quiet_progress

    with quiet_progress():
        model.save_pretrained(str(tmp))
    for f in TOKENIZER_DIR.iterdir():
        shutil.copy(f, tmp / f.name)
    try:
        tmp.rename(out)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    build_tokenizer()
    print(tiny_model_dir())
