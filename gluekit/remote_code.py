"""The original remote-code glm-4-9b-chat under transformers 5: the diagnosis, and a small opt-in shim.

``THUDM/glm-4-9b-chat`` (config.json ``model_type: chatglm``) ships its model as Python files
(``modeling_chatglm.py``, ``tokenization_chatglm.py``) written for transformers 4.4x. Under
transformers 5 every published revision fails, at these points (found by running them):

1. building the model: ``__init__`` reads ``config.max_length``, and transformers 5 strips
   generation keys (``max_length``, ``use_cache`` ...) out of model configs -> ``AttributeError``;
2. the first forward pass reads ``self.config.use_cache`` -> ``AttributeError``;
3. loading the weights needs ``all_tied_weights_keys``, set by ``post_init()``, which the remote
   ``__init__`` never calls -> ``AttributeError``;
4. ``generate()`` (evaluation, chat) calls ``GenerationMixin._extract_past_from_model_output``,
   which transformers removed -> ``AttributeError`` at the first evaluation;
5. a second load in the same process (a notebook cell run again) gives a model without
   ``.generate``: transformers adds ``GenerationMixin`` to remote classes only on the first load;
6. revisions 2024-06/07 override ``gradient_checkpointing_enable`` with a body that never turns
   checkpointing on (silently, under any transformers);
7. its tokenizer, in revisions before 2024-11, defines ``_pad`` without the ``padding_side``
   argument transformers 5 passes on every encode -> ``TypeError`` on the first text.

:func:`diagnosis` says which of these a folder's files hold (read as text by
:mod:`gluekit.families`, nothing executed) and what to do: use ``glm-4-9b-chat-hf`` (the same
weights under transformers' own ``GlmForCausalLM``), or pass ``trust_remote_code``, and gluekit
applies this module's shim. The shim patches the CLASSES transformers imported from the folder,
in memory, before the model is built; it never edits the folder's files and writes nothing into
config.json (the config defaults are class attributes, which ``save_pretrained`` does not write).
It is applied only when the family is ``chatglm`` and ``trust_remote_code`` is given, it logs
which patches it applied (logger ``gluekit.remote_code``, level WARNING), and it is pinned to the
transformers versions it was tested on (``TESTED_TRANSFORMERS``; another major version is refused).
Tested: training (LoRA, gradient checkpointing), greedy generation with the model's own cache
(equal to decoding without a cache), left-padded batches, save and load. Not supported: beam search.

THUDM's tokenizer pads on the LEFT only (it asserts ``padding_side == "left"``); gluekit never asks
it for right padding: training batches are right-padded by gluekit's own collator and generation
prompts are left-padded by gluekit (:func:`gluekit.evaluate.pad_rows`).
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path

from .errors import GluekitError
from .families import FAMILIES, ModelFolder, inspect_model

logger = logging.getLogger(__name__)

TESTED_TRANSFORMERS = ("5.24",)
"""transformers versions (major.minor) the shim was tested on. Another 5.x runs it with a warning;
another major version is refused."""
MARK = "_gluekit_remote_code_shim"

PATCHES = {
    "config-defaults": "ChatGLMConfig gets use_cache=True and max_length=None as class defaults "
                       "(transformers 5 strips both from model configs; the remote code reads them)",
    "post-init": "ChatGLMForConditionalGeneration runs post_init() after its __init__ (loading needs all_tied_weights_keys)",
    "generation-mixin": "GenerationMixin becomes a base class (else a second load in the same process has no .generate)",
    "generation-cache": "generation passes the model's own cache back through transformers 5's `cache` output field "
                        "(the remote code calls the removed _extract_past_from_model_output); no DynamicCache is made for it",
    "checkpointing": "the no-op gradient_checkpointing_enable override is removed, so gradient checkpointing really turns on",
    "tokenizer-pad": "ChatGLM4Tokenizer._pad accepts padding_side (left or none; it pads on the left only)",
}
HF_HINT = ("use THUDM/glm-4-9b-chat-hf instead: the same weights converted to transformers' own GlmForCausalLM, "
           "no remote code (LoRA then targets q_proj, k_proj, v_proj: 5,406,720 parameters at r=8, where the "
           "remote model's fused query_key_value has 2,785,280)")


def transformers_version() -> str:
    import transformers

    return transformers.__version__


def version_problem(version: str | None = None) -> str | None:
    """Why the shim refuses this transformers (another major version than it was tested on), or None."""
    version = version or transformers_version()
    majors = {v.split(".")[0] for v in TESTED_TRANSFORMERS}
    if version.split(".")[0] not in majors:
        return (f"gluekit's remote-code shim is tested on transformers {', '.join(TESTED_TRANSFORMERS)}; "
                f"transformers {version} is another major version, on which it is not run. Use THUDM/glm-4-9b-chat-hf, "
                f"or install transformers {TESTED_TRANSFORMERS[-1]}.")
    return None


def version_note(version: str | None = None) -> str | None:
    version = version or transformers_version()
    if ".".join(version.split(".")[:2]) in TESTED_TRANSFORMERS:
        return None
    return (f"transformers {version}: gluekit's remote-code shim was tested on {', '.join(TESTED_TRANSFORMERS)} only; "
            "it runs, but check the first evaluation before a long run.")


# ---------------------------------------------------------------- the diagnosis (text only)

def failures(folder: ModelFolder) -> list[str]:
    """What fails under the installed transformers, one line each, from the folder's files as text."""
    rc, tok, out = folder.remote, folder.tokenizer, []
    if rc is not None and rc.files.get("modeling_chatglm.py"):
        if rc.reads_max_length:
            out.append("building the model: AttributeError: 'ChatGLMConfig' object has no attribute 'max_length' "
                       "(transformers 5 strips generation keys such as max_length and use_cache from model configs)")
        if not rc.calls_post_init:
            out.append("loading the weights: AttributeError: 'ChatGLMForConditionalGeneration' object has no attribute "
                       "'all_tied_weights_keys' (its __init__ never calls post_init())")
        if rc.reads_use_cache:
            out.append("the first forward pass: AttributeError: 'ChatGLMConfig' object has no attribute 'use_cache'")
        if rc.extracts_past:
            out.append("generate() at the first evaluation or chat: AttributeError: 'ChatGLMForConditionalGeneration' "
                       "object has no attribute '_extract_past_from_model_output' (removed from transformers' GenerationMixin)")
        if rc.checkpointing_override:
            out.append("gradient_checkpointing: silently stays off (this revision overrides gradient_checkpointing_enable "
                       "with a body that never turns it on)")
    elif rc is not None:
        missing = [n for n, ok in rc.files.items() if not ok]
        out.append(f"loading: OSError: the folder has no {' / '.join(missing)} (config.json's auto_map names them), "
                   "so the model cannot be built at all")
    if tok.kind == "remote":
        if tok.pad_takes_padding_side is False:
            out.append("its tokenizer, on every text: TypeError: ChatGLM4Tokenizer._pad() got an unexpected keyword "
                       "argument 'padding_side' (tokenization_chatglm.py from before 2024-11)")
        if tok.code_present is False:
            out.append("its tokenizer: tokenization_chatglm.py is missing (tokenizer_config.json's auto_map names it)")
        if not tok.tiktoken_installed:
            out.append("its tokenizer: ImportError: it needs the tiktoken package, not installed here (pip install tiktoken)")
    return out


def planned_patches(folder: ModelFolder) -> list[str]:
    """The names (keys of ``PATCHES``) the shim will apply to this folder's classes."""
    names = []
    if folder.family is not None and folder.family.key == "chatglm":
        names = ["config-defaults", "post-init", "generation-mixin", "generation-cache"]
        if folder.remote is not None and folder.remote.checkpointing_override:
            names.append("checkpointing")
    if folder.tokenizer.kind == "remote" and folder.tokenizer.pad_takes_padding_side is False:
        names.append("tokenizer-pad")
    return names


def _revision(folder: ModelFolder) -> str:
    rc = folder.remote
    if rc is None or not rc.files.get("modeling_chatglm.py"):
        return "modeling_chatglm.py missing"
    if rc.revision is None:
        return "modeling_chatglm.py of an unrecognised revision"
    return f"modeling_chatglm.py of {rc.revision}, written for transformers {rc.written_for}"


def diagnosis(folder: ModelFolder, trust_remote_code: bool) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` for loading ``folder`` with or without ``trust_remote_code``.

    Problems stop a run (``gluekit check`` exits 1 listing them); notes say what will happen.
    Only the remote-code parts are judged here: a native model with THUDM's tokenizer needs
    ``trust_remote_code`` for the tokenizer alone.
    """
    if not folder.needs_remote_code:
        return [], []
    version = transformers_version()
    fails = failures(folder)
    model_remote = folder.family is not None and folder.family.key == "chatglm"
    if not trust_remote_code:
        if model_remote:
            head = (f"model {folder.name}: {folder.variant} (config.json model_type \"chatglm\"; {_revision(folder)}). "
                    f"Its model code ships with the weights and runs only with --trust-remote-code; "
                    f"under transformers {version} it fails as it is:")
        else:
            head = (f"model {folder.name}: its tokenizer is THUDM's remote ChatGLM4Tokenizer (tokenization_chatglm.py), "
                    "which runs only with --trust-remote-code" + (":" if fails else "."))
        lines = [head] + [f"    - {f};" for f in fails]
        lines.append(f"  Do one of: (1) {HF_HINT}; (2) add --trust-remote-code: gluekit then runs the folder's code with "
                     f"its compatibility shim (gluekit.remote_code, tested on transformers {', '.join(TESTED_TRANSFORMERS)}; "
                     "greedy generation, no beam search).")
        return ["\n".join(lines)], []
    problems, notes = [], []
    if model_remote:
        why = version_problem(version)
        if why:
            problems.append(f"model {folder.name}: {why}")
        if folder.remote is not None and not folder.remote.complete:
            missing = " / ".join(n for n, ok in folder.remote.files.items() if not ok)
            problems.append(f"model {folder.name}: config.json's auto_map names {missing}, which the folder does not hold: "
                            f"the model cannot be built. Copy the checkpoint's .py files into it, or {HF_HINT}.")
        elif folder.remote is not None and folder.remote.revision is None:
            notes.append(f"model {folder.name}: modeling_chatglm.py is not a revision gluekit recognises (2024-06, -07, -08); "
                         "the shim patches it all the same: check the first evaluation.")
    tok = folder.tokenizer
    if tok.kind == "remote" and not tok.tiktoken_installed:
        problems.append(f"model {folder.name}: its tokenizer (THUDM's ChatGLM4Tokenizer) needs the tiktoken package, "
                        "which is not installed. pip install tiktoken")
    if tok.kind == "remote" and tok.code_present is False:
        problems.append(f"model {folder.name}: tokenizer_config.json names tokenization_chatglm.py, which the folder does not "
                        "hold. Copy the checkpoint's tokenizer files into it.")
    names = planned_patches(folder)
    if names and not problems:
        what = (f"{folder.variant}, {_revision(folder)}" if model_remote else "THUDM's remote tokenizer")
        notes.append(f"model {folder.name}: {what}. --trust-remote-code: gluekit runs the folder's code with its "
                     f"compatibility shim (gluekit.remote_code, tested on transformers {', '.join(TESTED_TRANSFORMERS)}), "
                     f"which patches in memory: " + "; ".join(PATCHES[n] for n in names) + ".")
        if model_remote and version_note(version):
            notes.append(version_note(version))
    return problems, notes


# ---------------------------------------------------------------- the shim (classes, in memory)

def patch_config_class(config_cls) -> bool:
    """``use_cache`` / ``max_length`` as class defaults of the remote config class. True if it changed."""
    changed = False
    for name, value in (("use_cache", True), ("max_length", None)):
        if name not in config_cls.__dict__:
            setattr(config_cls, name, value)
            changed = True
    return changed


def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1, **_):
    """The remote model's cache (its own legacy tuples) handed back to its ``prepare_inputs_for_generation``.

    transformers 5 reports a model's ``past_key_values`` output under the renamed field ``cache``.
    """
    import torch

    past = outputs.get("cache") if hasattr(outputs, "get") else None
    if past is None:
        past = getattr(outputs, "past_key_values", None) if not isinstance(outputs, tuple) else outputs[1]
    model_kwargs["past_key_values"] = past
    model_kwargs.pop("cache", None)
    mask = model_kwargs.get("attention_mask")
    if mask is not None:
        model_kwargs["attention_mask"] = torch.cat([mask, mask.new_ones((mask.shape[0], num_new_tokens))], dim=-1)
    pos = model_kwargs.get("position_ids")
    if pos is not None:
        step = torch.arange(1, num_new_tokens + 1, device=pos.device, dtype=pos.dtype)
        model_kwargs["position_ids"] = torch.cat([pos, pos[..., -1:] + step], dim=-1)
    model_kwargs["is_first_forward"] = False
    return model_kwargs


def _no_dynamic_cache(cls) -> bool:
    return False


def patch_model_class(model_cls) -> list[str]:
    """Patch the remote ``ChatGLMForConditionalGeneration`` class in place; the names of the patches applied.

    Idempotent: a class already patched returns ``[]``.
    """
    from transformers import GenerationMixin

    if model_cls.__dict__.get(MARK):
        return []
    applied = []
    original_init = model_cls.__init__

    def __init__(self, config, *args, **kwargs):
        original_init(self, config, *args, **kwargs)
        if not hasattr(self, "all_tied_weights_keys"):
            self.post_init()

    model_cls.__init__ = __init__
    applied.append("post-init")
    if not issubclass(model_cls, GenerationMixin):
        model_cls.__bases__ = model_cls.__bases__ + (GenerationMixin,)
        applied.append("generation-mixin")
    model_cls._update_model_kwargs_for_generation = _update_model_kwargs_for_generation
    model_cls._supports_default_dynamic_cache = classmethod(_no_dynamic_cache)
    applied.append("generation-cache")
    for klass in model_cls.__mro__:
        if klass.__module__.startswith("transformers_modules") and "gradient_checkpointing_enable" in klass.__dict__:
            delattr(klass, "gradient_checkpointing_enable")
            applied.append("checkpointing")
    setattr(model_cls, MARK, True)
    return applied


def patch_tokenizer(tokenizer) -> bool:
    """Let THUDM's ``ChatGLM4Tokenizer._pad`` take ``padding_side`` (None or ``"left"``). True if patched now."""
    cls = type(tokenizer)
    original = cls.__dict__.get("_pad")
    if original is None or getattr(original, MARK, False) or "padding_side" in inspect.signature(original).parameters:
        return False

    def _pad(self, encoded_inputs, *args, padding_side=None, **kwargs):
        if padding_side not in (None, "left"):
            raise ValueError(f"ChatGLM4Tokenizer pads on the left only, got padding_side={padding_side!r}.")
        return original(self, encoded_inputs, *args, **kwargs)

    setattr(_pad, MARK, True)
    cls._pad = _pad
    return True


def _log(path, names: list[str]) -> None:
    if names:
        logger.warning("gluekit.remote_code: %s under transformers %s: patched in memory: %s.", path,
                       transformers_version(), "; ".join(PATCHES[n] for n in names))


def model_load_kwargs(path: str | Path, trust_remote_code: bool) -> dict:
    """Extra ``from_pretrained`` keyword arguments for the model in ``path``: ``{}`` unless it is remote-code GLM-4.

    For a ``chatglm`` folder: without ``trust_remote_code`` raises :class:`GluekitError` with
    :func:`diagnosis`'s message (instead of transformers' prompt or ValueError); with it, loads the
    config with the folder's code, patches the config and model classes, logs the patches and
    returns ``{"config": config}``.
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        return {}
    info = inspect_model(folder)
    if info.family is not FAMILIES["chatglm"]:
        return {}
    tok_ok = info.tokenizer.kind != "remote"  # the tokenizer is judged where it loads
    problems, _ = diagnosis(info if tok_ok else _without_tokenizer(info), trust_remote_code)
    if problems:
        raise GluekitError(problems)
    from transformers import AutoConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    names = ["config-defaults"] if patch_config_class(type(config)) else []
    model_cls = get_class_from_dynamic_module(config.auto_map["AutoModelForCausalLM"], str(folder))
    names += patch_model_class(model_cls)
    _log(folder, names)
    note = version_note()
    if note and names:
        logger.warning("gluekit.remote_code: %s", note)
    return {"config": config}


def _without_tokenizer(info: ModelFolder) -> ModelFolder:
    import dataclasses

    from .families import TokenizerFiles

    return dataclasses.replace(info, tokenizer=TokenizerFiles("none"))


def prepare_tokenizer(tokenizer, path: str | Path, trust_remote_code: bool):
    """``tokenizer`` ready for transformers 5: THUDM's ``ChatGLM4Tokenizer`` gets the ``_pad`` patch
    when ``trust_remote_code`` is given (it could not have loaded otherwise). Other tokenizers unchanged."""
    if trust_remote_code and type(tokenizer).__name__ == "ChatGLM4Tokenizer" \
            and type(tokenizer).__module__.startswith("transformers_modules") and patch_tokenizer(tokenizer):
        _log(path, ["tokenizer-pad"])
    return tokenizer


def tokenizer_problems(path: str | Path, trust_remote_code: bool) -> list[str]:
    """Why THUDM's remote tokenizer in ``path`` cannot load here, before trying (``[]`` for any other tokenizer).

    Without ``trust_remote_code`` the whole folder's diagnosis (the model's code too, when it is
    remote-code GLM-4); with it, only what stops the tokenizer itself (tiktoken, its file).
    """
    import dataclasses

    folder = Path(path)
    if not (folder / "tokenizer_config.json").is_file() or not (folder / "config.json").is_file():
        return []
    info = inspect_model(folder)
    if info.tokenizer.kind != "remote":
        return []
    if not trust_remote_code:
        return diagnosis(info, False)[0]
    return diagnosis(dataclasses.replace(info, family=FAMILIES["glm"], remote=None), True)[0]


__all__ = ["TESTED_TRANSFORMERS", "PATCHES", "diagnosis", "failures", "planned_patches", "patch_config_class",
           "patch_model_class", "patch_tokenizer", "model_load_kwargs", "prepare_tokenizer", "tokenizer_problems",
           "version_problem", "version_note"]
