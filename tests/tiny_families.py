"""Test-only: tiny random instances of the three GLM-4 families, and a small data folder. gluekit never imports this.

- ``glm``: the embedded tiny GLM (``gluekit.tiny``), transformers' ``GlmForCausalLM``;
- ``glm4``: a tiny random ``Glm4ForCausalLM`` (GLM-4-9B-0414's class: four norms per layer) with
  gluekit's tiny tokenizer and the GLM-4-0414 chat template (``families/glm-4-0414.chat_template.jinja``;
  the tiny tokenizer has every token it uses);
- ``chatglm``: a remote-code folder as THUDM/glm-4-9b-chat's: config.json with ``model_type: chatglm`` and
  ``auto_map``, the stand-in ``configuration_chatglm.py`` / ``modeling_chatglm.py`` of
  ``families/remote_code/`` (written for these tests; see their docstrings), gluekit's tiny tokenizer
  (its template is GLM-4-9B-chat's format) and random weights. It loads only through
  ``trust_remote_code=True`` and reproduces the transformers-5 breakage points gluekit's shim fixes.

Sizes: hidden 64, 2 layers, 4 heads of 16, 2 key/value groups, FFN 128, the tiny vocabulary (8,010).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

HERE = Path(__file__).parent / "families"
TEMPLATE_0414 = (HERE / "glm-4-0414.chat_template.jinja").read_text(encoding="utf-8")
SHAPE = dict(hidden_size=64, layers=2, heads=4, kv_groups=2, head_dim=16, ffn=128)


def _tokenizer(template: str | None = None):
    from transformers import AutoTokenizer

    from gluekit.tiny import TOKENIZER_DIR

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    if template is not None:
        tok.chat_template = template
    return tok


def _stops(tok) -> list[int]:
    from gluekit.families import STOP_TOKENS

    return [tok.convert_tokens_to_ids(t) for t in STOP_TOKENS]


def _generation_config(tok):
    from transformers import GenerationConfig

    return GenerationConfig(eos_token_id=_stops(tok), pad_token_id=tok.pad_token_id)


def build_glm4(out: Path, seed: int = 0) -> Path:
    """A tiny random ``Glm4ForCausalLM`` folder with the GLM-4-0414 chat template."""
    import torch
    from transformers import Glm4Config, Glm4ForCausalLM

    tok = _tokenizer(TEMPLATE_0414)
    s = SHAPE
    config = Glm4Config(vocab_size=len(tok), hidden_size=s["hidden_size"], intermediate_size=s["ffn"],
                        num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv_groups"],
                        head_dim=s["head_dim"], partial_rotary_factor=0.5, rms_norm_eps=1e-5, attention_bias=True,
                        max_position_embeddings=2048, tie_word_embeddings=False, pad_token_id=tok.pad_token_id,
                        eos_token_id=_stops(tok), initializer_range=0.1)
    torch.manual_seed(seed)
    model = Glm4ForCausalLM(config)
    model.generation_config = _generation_config(tok)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def chatglm_config(tok) -> dict:
    """A tiny chatglm config.json: GLM-4-9B-chat's keys, tiny sizes."""
    s = SHAPE
    return {
        "_name_or_path": "tiny-glm-4-9b-chat", "model_type": "chatglm", "architectures": ["ChatGLMModel"],
        "auto_map": {"AutoConfig": "configuration_chatglm.ChatGLMConfig",
                     "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration",
                     "AutoModelForCausalLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
                     "AutoModelForSeq2SeqLM": "modeling_chatglm.ChatGLMForConditionalGeneration"},
        "add_bias_linear": False, "add_qkv_bias": True, "ffn_hidden_size": s["ffn"], "hidden_size": s["hidden_size"],
        "kv_channels": s["head_dim"], "layernorm_epsilon": 1.5625e-07, "multi_query_attention": True,
        "multi_query_group_num": s["kv_groups"], "num_attention_heads": s["heads"], "num_hidden_layers": s["layers"],
        "num_layers": s["layers"], "rope_ratio": 500, "original_rope": True, "padded_vocab_size": len(tok),
        "post_layer_norm": True, "rmsnorm": True, "seq_length": 2048, "use_cache": True, "torch_dtype": "float32",
        "tie_word_embeddings": False, "eos_token_id": _stops(tok), "pad_token_id": tok.pad_token_id,
    }


def write_chatglm_files(out: Path, code: Path = HERE / "remote_code") -> Path:
    """config.json, the model code (the stand-in, or THUDM's from ``code``) and the tokenizer of a tiny
    remote-code folder (no weights)."""
    out.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer()
    tok.save_pretrained(str(out))
    for f in ("configuration_chatglm.py", "modeling_chatglm.py"):
        shutil.copy(Path(code) / f, out / f)
    (out / "config.json").write_text(json.dumps(chatglm_config(tok), indent=2), encoding="utf-8")
    _generation_config(tok).save_pretrained(str(out))
    return out


def build_chatglm(out: Path, seed: int = 0, code: Path = HERE / "remote_code") -> Path:
    """A tiny remote-code folder with random weights (built with gluekit's shim: the code needs it under transformers 5).

    Weights are set explicitly (normal(0, 0.1), norms 1): THUDM's code leaves them uninitialised."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from gluekit.remote_code import patch_config_class, patch_model_class

    write_chatglm_files(out, code)
    config = AutoConfig.from_pretrained(str(out), trust_remote_code=True)
    patch_config_class(type(config))
    cls = get_class_from_dynamic_module(config.auto_map["AutoModelForCausalLM"], str(out))
    patch_model_class(cls)
    model = cls(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.ones_like(p) if name.endswith("layernorm.weight") else torch.randn(p.shape, generator=g) * 0.1)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def small_data(out: Path, train: int = 8, dev: int = 3) -> Path:
    """The first ``train`` / ``dev`` conversations of the demo data (tool calls included)."""
    from gluekit.tiny import DEMO_DIR

    out.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.jsonl", train), ("dev.jsonl", dev)):
        lines = (DEMO_DIR / name).read_text(encoding="utf-8").splitlines()[:n]
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def run_overrides(out: Path, targets: list[str]) -> list[str]:
    """tiny.yaml cut to 4 steps: checkpoints at 2 and 4, evaluation at 4, 4 new tokens, LoRA r 4 on ``targets``."""
    return ["training_args.max_steps=4", "training_args.save_steps=2", "training_args.eval_steps=4",
            "training_args.logging_steps=1", "training_args.per_device_train_batch_size=2",
            "training_args.per_device_eval_batch_size=4", "training_args.generation_config.max_new_tokens=4",
            "training_args.log_level=warning", f"training_args.output_dir={out}", "peft_config.r=4",
            f"peft_config.target_modules={json.dumps(targets)}"]
