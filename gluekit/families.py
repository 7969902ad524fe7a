"""Which GLM-4 a model folder holds, read from its ``config.json`` and tokenizer files as plain text.

Three families of GLM-4-9B checkpoints meet a user, each with its own class and LoRA names:

============  ==============================  ==================  =================  ========================
family        checkpoints                     class               remote code        q, k, v for LoRA
============  ==============================  ==================  =================  ========================
``glm``       glm-4-9b-chat-hf                ``GlmForCausalLM``  no                 q_proj, k_proj, v_proj
``glm4``      GLM-4-9B-0414, GLM-Z1-9B-0414   ``Glm4ForCausalLM`` no                 q_proj, k_proj, v_proj
``chatglm``   glm-4-9b-chat (the original)    THUDM's own code    trust_remote_code  query_key_value (fused)
============  ==============================  ==================  =================  ========================

:func:`inspect_model` tells them apart without running anything from the folder: it never calls
``AutoConfig`` first (on a remote-code folder that prompts for 15 seconds, or raises). For a
remote-code folder it also reads, as text, which revision of ``modeling_chatglm.py`` it holds
(:class:`RemoteCode`), and for any folder whether its tokenizer is THUDM's remote
``ChatGLM4Tokenizer`` (:class:`TokenizerFiles`: needs ``tiktoken``; revisions before 2024-11 fail
every encode under transformers 5). :mod:`gluekit.remote_code` turns these facts into the
diagnosis ``gluekit check`` prints and into the load-time shim.

Each family also knows its GLM-4-9B shape (:meth:`Family.config_9b`; ``gluekit.models.meta_model``
builds it on the meta device for parameter accounting: 9,399,951,360 parameters for
glm-4-9b-chat-hf and the remote-code model, 9,400,279,040 for the 0414 models, whose layers carry
two more norms), its linear-layer names and its stop tokens.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import GluekitError

# Generation stops on any of these in all three families (generation_config.json: eos_token_id
# [151329, 151336, 151338] in GLM-4's vocabulary).
STOP_TOKENS = ("<|endoftext|>", "<|user|>", "<|observation|>")
NATIVE_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj")
REMOTE_LINEARS = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")
# The attribute a config carries when its model is the remote-code module tree: gluekit.models.meta_model
# then builds that tree (query_key_value ...) instead of transformers' class.
MODULE_TREE_KEY = "gluekit_module_tree"


@dataclass(frozen=True)
class Family:
    """What gluekit knows about one family of GLM-4-9B checkpoints."""

    key: str
    """``glm``, ``glm4`` or ``chatglm`` (config.json's ``model_type``)."""
    title: str
    model_class: str
    checkpoints: tuple[str, ...]
    """Hub ids of its GLM-4-9B checkpoints."""
    remote_code: bool
    linears: tuple[str, ...]
    """Leaf names of its decoder layers' linear layers (what ``target_modules`` matches)."""
    qkv_targets: tuple[str, ...]
    """``target_modules`` naming q, k and v in this family."""
    plan_names: tuple[str, ...]
    """Names ``gluekit plan --model`` takes for its 9B shape (matched case-insensitively)."""
    params_9b: int
    stop_tokens: tuple[str, ...] = STOP_TOKENS

    def config_9b(self):
        """The GLM-4-9B shape of this family as a transformers config (no weights)."""
        from transformers import Glm4Config, GlmConfig

        shape = dict(vocab_size=151552, hidden_size=4096, intermediate_size=13696, num_hidden_layers=40,
                     num_attention_heads=32, num_key_value_heads=2, head_dim=128, tie_word_embeddings=False,
                     pad_token_id=151329, eos_token_id=[151329, 151336, 151338])
        if self.key == "glm4":
            # GLM-4-9B-0414: 32K context and eps 1e-5 (transformers' Glm4Config defaults are glm-4-9b-chat's)
            return Glm4Config(**shape, max_position_embeddings=32768, rms_norm_eps=1e-5, partial_rotary_factor=0.5,
                              attention_bias=True)
        config = GlmConfig(**shape)
        if self.key == "chatglm":
            setattr(config, MODULE_TREE_KEY, "chatglm")
        return config


FAMILIES: dict[str, Family] = {f.key: f for f in (
    Family("glm", "glm-4-9b-chat-hf", "GlmForCausalLM", ("THUDM/glm-4-9b-chat-hf", "zai-org/glm-4-9b-chat-hf"),
           False, NATIVE_LINEARS, ("q_proj", "k_proj", "v_proj"),
           ("glm-4-9b", "glm-4-9b-chat-hf", "glm4-9b", "THUDM/glm-4-9b-chat-hf", "zai-org/glm-4-9b-chat-hf"),
           9_399_951_360),
    Family("glm4", "GLM-4-9B-0414", "Glm4ForCausalLM",
           ("THUDM/GLM-4-9B-0414", "zai-org/GLM-4-9B-0414", "THUDM/GLM-Z1-9B-0414", "zai-org/GLM-Z1-9B-0414"),
           False, NATIVE_LINEARS, ("q_proj", "k_proj", "v_proj"),
           ("glm-4-9b-0414", "glm-z1-9b-0414", "THUDM/GLM-4-9B-0414", "zai-org/GLM-4-9B-0414",
            "THUDM/GLM-Z1-9B-0414", "zai-org/GLM-Z1-9B-0414"),
           9_400_279_040),
    Family("chatglm", "glm-4-9b-chat", "ChatGLMForConditionalGeneration (remote code)",
           ("THUDM/glm-4-9b-chat", "zai-org/glm-4-9b-chat"),
           True, REMOTE_LINEARS, ("query_key_value",),
           ("glm-4-9b-chat", "THUDM/glm-4-9b-chat", "zai-org/glm-4-9b-chat"),
           9_399_951_360),
)}


def family_by_name(name: str) -> Family | None:
    """The family whose 9B shape ``name`` means (``glm-4-9b-0414`` -> glm4), or None."""
    low = str(name).lower()
    return next((f for f in FAMILIES.values() if low in (n.lower() for n in f.plan_names)), None)


# ---------------------------------------------------------------- the folder's files, as text

# Static marks of the published revisions of modeling_chatglm.py (hub history of THUDM/glm-4-9b-chat):
# how each one hands generation its cache, and the transformers it was written for.
REVISIONS = (
    ("2024-08", r"cache_name,\s*cache\s*=\s*self\._extract_past_from_model_output\(\s*outputs\s*\)", "4.44-4.48"),
    ("2024-07", r"cache_name,\s*cache\s*=\s*self\._extract_past_from_model_output\([^)]*standardize_cache_format",
     "4.42-4.43"),
    ("2024-06", r"model_kwargs\[\s*[\"']past_key_values[\"']\s*\]\s*=\s*self\._extract_past_from_model_output\(",
     "4.41 and older"),
)


@dataclass
class RemoteCode:
    """What a remote-code (``model_type: chatglm``) folder's Python files hold, read as text."""

    files: dict[str, bool]
    """``configuration_chatglm.py`` / ``modeling_chatglm.py`` -> present in the folder."""
    revision: str | None = None
    """``2024-06``, ``2024-07`` or ``2024-08`` (see ``REVISIONS``), None when not recognised or absent."""
    written_for: str | None = None
    """The transformers versions that revision ran on."""
    reads_max_length: bool = False
    """``__init__`` reads ``config.max_length`` (transformers 5 strips it from model configs)."""
    reads_use_cache: bool = False
    """``forward`` reads ``self.config.use_cache`` (stripped too)."""
    calls_post_init: bool = False
    """``__init__`` calls ``post_init()`` (which sets what transformers 5's loading needs)."""
    extracts_past: bool = False
    """Generation calls ``_extract_past_from_model_output``, removed from transformers' GenerationMixin."""
    checkpointing_override: bool = False
    """Overrides ``gradient_checkpointing_enable`` with a body that never turns checkpointing on (2024-06/07)."""

    @property
    def complete(self) -> bool:
        return all(self.files.values())


@dataclass
class TokenizerFiles:
    """The folder's tokenizer, read from ``tokenizer_config.json`` and the files beside it."""

    kind: str
    """``remote`` (THUDM's ``ChatGLM4Tokenizer``, code in the folder), ``fast`` (``tokenizer.json``) or ``none``."""
    class_name: str | None = None
    code_present: bool | None = None
    """remote: ``tokenization_chatglm.py`` is in the folder."""
    pad_takes_padding_side: bool | None = None
    """remote: its ``_pad`` accepts the ``padding_side`` transformers 5 passes on every encode."""
    tiktoken_installed: bool | None = None
    """remote: the ``tiktoken`` package it needs can be imported here."""
    chat_template: str | None = None


@dataclass
class ModelFolder:
    """A model folder as :func:`inspect_model` read it."""

    path: Path
    family: Family | None
    """None: not a GLM-4 model gluekit knows (``why_not`` says what was found)."""
    name: str = ""
    """The model as the user named it (``tiny`` for the embedded one): what messages show."""
    variant: str = ""
    """What it is, in words: ``glm-4-9b-chat-hf``, ``GLM-Z1-9B-0414``, ``the embedded tiny GLM`` ..."""
    config: dict = field(default_factory=dict)
    """config.json as plain JSON."""
    remote: RemoteCode | None = None
    tokenizer: TokenizerFiles = field(default_factory=lambda: TokenizerFiles("none"))
    why_not: str | None = None
    is_9b: bool = False
    """Its shape is GLM-4-9B's (hidden 4096, 40 layers, vocabulary 151,552)."""

    @property
    def needs_remote_code(self) -> bool:
        """Loading it runs Python files from the folder (the model's, or the tokenizer's)."""
        return bool(self.family and self.family.remote_code) or self.tokenizer.kind == "remote"

    def summary(self) -> str:
        """One line: what the folder holds and how gluekit loads it."""
        if self.family is None:
            return f"model {self.name}: {self.why_not}"
        f = self.family
        how = ("remote code: its own modeling_chatglm.py, run only with --trust-remote-code" if f.remote_code
               else f"{f.model_class}, transformers' own class, no remote code")
        tok = "; tokenizer: THUDM's remote ChatGLM4Tokenizer (needs --trust-remote-code and tiktoken)" \
            if self.tokenizer.kind == "remote" else ""
        return f"model {self.name}: {self.variant} ({how}){tok}."


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GluekitError(f"model {path.parent}: cannot read {path.name} ({e}). It must be the model's JSON config.") from None
    if not isinstance(data, dict):
        raise GluekitError(f"model {path.parent}: {path.name} is not a JSON object, got {type(data).__name__}.")
    return data


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_remote_code(folder: Path) -> RemoteCode:
    """The revision and the transformers-5 breakage points of a chatglm folder's modeling file (as text)."""
    names = ("configuration_chatglm.py", "modeling_chatglm.py")
    rc = RemoteCode({n: (folder / n).is_file() for n in names})
    src = _text(folder / "modeling_chatglm.py")
    if src is None:
        return rc
    for rev, pattern, written_for in REVISIONS:
        if re.search(pattern, src):
            rc.revision, rc.written_for = rev, written_for
            break
    rc.reads_max_length = bool(re.search(r"config\.max_length\b", src))
    rc.reads_use_cache = bool(re.search(r"self\.config\.use_cache\b", src))
    rc.calls_post_init = bool(re.search(r"\.post_init\(\)", src))
    rc.extracts_past = "_extract_past_from_model_output(" in src
    rc.checkpointing_override = bool(re.search(r"def gradient_checkpointing_enable\(", src))
    return rc


def tiktoken_installed() -> bool:
    return importlib.util.find_spec("tiktoken") is not None


def read_tokenizer(folder: Path) -> TokenizerFiles:
    """Which tokenizer the folder holds, from ``tokenizer_config.json`` (and the remote file's ``_pad``)."""
    tc_path = folder / "tokenizer_config.json"
    tc = _read_json(tc_path) if tc_path.is_file() else {}
    template = tc.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), None)
    if (folder / "chat_template.jinja").is_file():
        template = _text(folder / "chat_template.jinja")
    auto = (tc.get("auto_map") or {}).get("AutoTokenizer")
    ref = " ".join(x for x in (auto if isinstance(auto, list) else [auto]) if isinstance(x, str))
    if "ChatGLM4Tokenizer" in ref or tc.get("tokenizer_class") == "ChatGLM4Tokenizer":
        tok = TokenizerFiles("remote", "ChatGLM4Tokenizer", (folder / "tokenization_chatglm.py").is_file(),
                             tiktoken_installed=tiktoken_installed(), chat_template=template)
        src = _text(folder / "tokenization_chatglm.py")
        m = re.search(r"def _pad\((.*?)\)\s*(->[^:]*)?:", src or "", re.S)
        if m:
            tok.pad_takes_padding_side = "padding_side" in m.group(1)
        return tok
    if (folder / "tokenizer.json").is_file():
        return TokenizerFiles("fast", tc.get("tokenizer_class"), chat_template=template)
    return TokenizerFiles("none", tc.get("tokenizer_class"), chat_template=template)


def _is_9b(raw: dict) -> bool:
    hidden = raw.get("hidden_size")
    layers = raw.get("num_hidden_layers", raw.get("num_layers"))
    vocab = raw.get("vocab_size", raw.get("padded_vocab_size"))
    return (hidden, layers, vocab) == (4096, 40, 151552)


def inspect_model(model: str | os.PathLike | None = None) -> ModelFolder:
    """Read a model folder's family from config.json and its tokenizer files; nothing is executed.

    ``model``: a folder, or None / ``"tiny"`` for the embedded tiny GLM. Raises
    :class:`~gluekit.errors.GluekitError` when there is no config.json to read. A folder of another
    architecture comes back with ``family=None`` and ``why_not`` naming what was found.
    """
    tiny = model is None or str(model) == "tiny"
    if tiny:
        from .tiny import tiny_model_dir

        folder = tiny_model_dir()
    else:
        folder = Path(model)
    if not (folder / "config.json").is_file():
        what = "no such folder" if not folder.exists() else "no config.json in it"
        raise GluekitError(f"model {model}: {what}. Give a local model folder (config.json, tokenizer and weights), "
                           "or leave --model out for the embedded tiny GLM.")
    raw = _read_json(folder / "config.json")
    tok = read_tokenizer(folder)
    model_type = raw.get("model_type")
    archs = raw.get("architectures") or []
    auto_config = str((raw.get("auto_map") or {}).get("AutoConfig", ""))
    out = ModelFolder(folder, None, "tiny" if tiny else str(model), "", raw, tokenizer=tok, is_9b=_is_9b(raw))
    if model_type == "chatglm" or auto_config.endswith("ChatGLMConfig") or \
            {"ChatGLMModel", "ChatGLMForConditionalGeneration"} & set(archs):
        vocab = raw.get("padded_vocab_size")
        if "vision_config" in raw:
            out.why_not = "not a GLM-4 text model gluekit trains: a remote-code GLM-4V (config.json has vision_config)."
        elif vocab == 65024:
            out.why_not = ("not a GLM-4 model: remote-code ChatGLM2/ChatGLM3 (config.json padded_vocab_size 65024; "
                           "GLM-4's is 151552).")
        else:
            out.family, out.remote = FAMILIES["chatglm"], read_remote_code(folder)
            if not out.is_9b:
                out.variant = "a remote-code GLM-4 chat model (THUDM's ChatGLM code, not GLM-4-9B's shape)"
            elif raw.get("seq_length") == 1048576:
                out.variant = "THUDM/glm-4-9b-chat-1m (the original remote-code GLM-4, 1M context)"
            else:
                out.variant = "THUDM/glm-4-9b-chat (the original remote-code GLM-4)"
        return out
    if model_type == "glm" or "GlmForCausalLM" in archs:
        out.family = FAMILIES["glm"]
        out.variant = "the embedded tiny GLM (random weights)" if tiny else (
            "glm-4-9b-chat-hf" if out.is_9b else "a GlmForCausalLM model (not GLM-4-9B's shape)")
        return out
    if model_type == "glm4" or "Glm4ForCausalLM" in archs:
        out.family = FAMILIES["glm4"]
        z1 = "<think>" in (tok.chat_template or "")
        name = "GLM-Z1-9B-0414" if z1 else "GLM-4-9B-0414"
        out.variant = name if out.is_9b else f"a Glm4ForCausalLM model ({'GLM-Z1' if z1 else 'GLM-4'}-0414 chat template, not the 9B shape)"
        return out
    found = f"model_type {model_type!r}" + (f", architectures {archs}" if archs else "")
    out.why_not = (f"not a GLM-4 model gluekit knows: config.json has {found}. gluekit trains glm-4-9b-chat-hf "
                   "(model_type glm), GLM-4-9B-0414 / GLM-Z1-9B-0414 (glm4) and the remote-code glm-4-9b-chat (chatglm).")
    return out


def shape_config(folder: ModelFolder):
    """The folder's shape as a transformers config, for meta-device accounting (no code, no weights).

    A remote-code config.json is read into transformers' ``GlmConfig`` (the same shape: it is what
    glm-4-9b-chat-hf holds) marked so that :func:`gluekit.models.meta_model` builds the remote
    module tree (``query_key_value`` ...) from it.
    """
    raw = folder.config
    if folder.family is not None and folder.family.key == "chatglm":
        from transformers import GlmConfig

        config = GlmConfig(vocab_size=raw["padded_vocab_size"], hidden_size=raw["hidden_size"],
                           intermediate_size=raw["ffn_hidden_size"], num_hidden_layers=raw["num_layers"],
                           num_attention_heads=raw["num_attention_heads"],
                           num_key_value_heads=raw.get("multi_query_group_num", raw["num_attention_heads"]),
                           head_dim=raw["kv_channels"], tie_word_embeddings=False,
                           pad_token_id=raw.get("pad_token_id"), eos_token_id=raw.get("eos_token_id"))
        setattr(config, MODULE_TREE_KEY, "chatglm")
        return config
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(folder.path), trust_remote_code=False)


__all__ = ["STOP_TOKENS", "Family", "FAMILIES", "family_by_name", "RemoteCode", "TokenizerFiles", "ModelFolder",
           "inspect_model", "read_remote_code", "read_tokenizer", "shape_config", "tiktoken_installed", "REVISIONS"]
