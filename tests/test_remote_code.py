"""gluekit.remote_code: the diagnosis of a remote-code glm-4-9b-chat folder and the shim, against the
test stand-in (tests/families/remote_code/) and, when present, THUDM's own files.

Optional inputs (tests skip without them):
- GLUEKIT_THUDM_CODE: a folder of sub-folders, each holding one revision of THUDM/glm-4-9b-chat's
  ``configuration_chatglm.py`` + ``modeling_chatglm.py`` (never shipped with gluekit);
- the real GLM-4-9B-chat tokenizer in ``../shared/third_party/glm-4-9b-chat-tokenizer`` (or under
  GLUEKIT_SHARED), with the ``tiktoken`` package.
"""
import os
import shutil
import uuid
from pathlib import Path

import pytest
import torch

from gluekit.cli import main
from gluekit.errors import GluekitError
from gluekit.families import inspect_model
from gluekit.remote_code import PATCHES, diagnosis, patch_config_class, patch_model_class, version_problem
from tiny_families import build_chatglm, write_chatglm_files

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GLUEKIT_SHARED", REPO.parent / "shared"))
TOKENIZER = SHARED / "third_party" / "glm-4-9b-chat-tokenizer"
THUDM = os.environ.get("GLUEKIT_THUDM_CODE")


def _fresh(tmp_path, stem="remote"):
    """A folder name never loaded before in this process: transformers imports its code afresh (unpatched)."""
    return tmp_path / f"{stem}_{uuid.uuid4().hex[:8]}"


HF = ("use THUDM/glm-4-9b-chat-hf instead: the same weights converted to transformers' own GlmForCausalLM, no remote "
      "code (LoRA then targets q_proj, k_proj, v_proj: 5,406,720 parameters at r=8, where the remote model's fused "
      "query_key_value has 2,785,280)")


def test_check_without_the_flag_names_it_and_the_hf_checkpoint(tmp_path, capsys, configs):
    import transformers

    folder = write_chatglm_files(tmp_path / "remote")
    assert main(["check", os.path.join(configs, "lora.yaml"), "--model", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err == (
        "gluekit check: 1 input problem(s):\n"
        f"  - model {folder}: a remote-code GLM-4 chat model (THUDM's ChatGLM code, not GLM-4-9B's shape) (config.json "
        "model_type \"chatglm\"; modeling_chatglm.py of 2024-08, written for transformers 4.44-4.48). Its model code "
        "ships with the weights and runs only with --trust-remote-code; under transformers "
        f"{transformers.__version__} it fails as it is:\n"
        "    - building the model: AttributeError: 'ChatGLMConfig' object has no attribute 'max_length' (transformers 5 "
        "strips generation keys such as max_length and use_cache from model configs);\n"
        "    - loading the weights: AttributeError: 'ChatGLMForConditionalGeneration' object has no attribute "
        "'all_tied_weights_keys' (its __init__ never calls post_init());\n"
        "    - the first forward pass: AttributeError: 'ChatGLMConfig' object has no attribute 'use_cache';\n"
        "    - generate() at the first evaluation or chat: AttributeError: 'ChatGLMForConditionalGeneration' object has "
        "no attribute '_extract_past_from_model_output' (removed from transformers' GenerationMixin);\n"
        f"  Do one of: (1) {HF}; (2) add --trust-remote-code: gluekit then runs the folder's code with its compatibility "
        "shim (gluekit.remote_code, tested on transformers 5.24; greedy generation, no beam search).\n")
    # the library says the same instead of transformers' 15-second prompt or its ValueError
    from gluekit.models import load_model

    with pytest.raises(GluekitError) as e:
        load_model(str(folder), trust_remote_code=False)
    assert "--trust-remote-code" in e.value.problems[0] and "THUDM/glm-4-9b-chat-hf" in e.value.problems[0]


def test_check_with_the_flag_says_which_patches(tmp_path, capsys, configs, family_data):
    folder = write_chatglm_files(tmp_path / "remote")
    assert main(["check", os.path.join(configs, "lora-0414.yaml"), "--model", str(folder), "--trust-remote-code",
                 "--data-dir", str(family_data), "-o", "training_args.deepspeed=null"]) == 0
    out = capsys.readouterr().out
    shim = ("note: model {f}: a remote-code GLM-4 chat model (THUDM's ChatGLM code, not GLM-4-9B's shape), "
            "modeling_chatglm.py of 2024-08, written for transformers 4.44-4.48. --trust-remote-code: gluekit runs the "
            "folder's code with its compatibility shim (gluekit.remote_code, tested on transformers 5.24), which patches "
            "in memory: ").format(f=folder)
    assert shim + "; ".join(PATCHES[n] for n in ("config-defaults", "post-init", "generation-mixin",
                                                  "generation-cache")) + ".\n" in out
    # lora-0414.yaml's native q/k/v names on the fused model: one adapter, both counts
    assert ("  lora.yaml: target_modules ['q_proj', 'k_proj', 'v_proj'] trains query_key_value here; this family names "
            "q, k and v query_key_value.\n") in out
    assert ("  at r=8, LoRA on q/k/v trains 5,120 parameters as three adapters (q_proj, k_proj, v_proj) and 3,072 as one "
            "on the fused query_key_value (remote code).\n") in out


def test_the_stand_in_breaks_where_the_real_code_breaks_and_the_shim_fixes_it(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    folder = write_chatglm_files(_fresh(tmp_path))
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    with pytest.raises(AttributeError, match="no attribute 'max_length'"):
        AutoModelForCausalLM.from_config(config, trust_remote_code=True)
    assert patch_config_class(type(config)) and not patch_config_class(type(config))
    cls = get_class_from_dynamic_module(config.auto_map["AutoModelForCausalLM"], str(folder))
    model = cls(config)
    assert not hasattr(model, "all_tied_weights_keys")  # what from_pretrained's last step needs
    out = model(input_ids=torch.tensor([[5, 6, 7]]), use_cache=True)
    with pytest.raises(AttributeError, match="_extract_past_from_model_output"):
        model._update_model_kwargs_for_generation(out, {})
    assert patch_model_class(cls) == ["post-init", "generation-mixin", "generation-cache"]
    assert patch_model_class(cls) == []  # idempotent
    model = cls(config)
    assert hasattr(model, "all_tied_weights_keys") and hasattr(model, "generate")
    kw = model._update_model_kwargs_for_generation(out, {"attention_mask": torch.ones(1, 3, dtype=torch.long)})
    assert len(kw["past_key_values"]) == 2 and kw["attention_mask"].shape == (1, 4) and kw["is_first_forward"] is False


def test_second_load_in_one_process_still_generates(tiny_chatglm_dir):
    from gluekit.models import load_model

    a, b = load_model(str(tiny_chatglm_dir), True), load_model(str(tiny_chatglm_dir), True)
    ids = torch.tensor([[5, 60, 700]])
    assert torch.equal(a.generate(ids, max_new_tokens=3, do_sample=False), b.generate(ids, max_new_tokens=3, do_sample=False))
    assert "max_length" not in (tiny_chatglm_dir / "config.json").read_text()  # class defaults, never written


def test_other_major_transformers_is_refused():
    assert version_problem("5.30.1") is None
    assert version_problem("6.0.0") == (
        "gluekit's remote-code shim is tested on transformers 5.24; transformers 6.0.0 is another major version, on "
        "which it is not run. Use THUDM/glm-4-9b-chat-hf, or install transformers 5.24.")


def test_missing_code_files_are_named(tmp_path):
    folder = write_chatglm_files(tmp_path / "remote")
    (folder / "modeling_chatglm.py").unlink()
    info = inspect_model(folder)
    problems, _ = diagnosis(info, True)
    assert problems == [f"model {folder}: config.json's auto_map names modeling_chatglm.py, which the folder does not "
                        f"hold: the model cannot be built. Copy the checkpoint's .py files into it, or {HF}."]


# ---------------------------------------------------------------- THUDM's real tokenizer (skips without ../shared)

@pytest.fixture
def old_tokenizer(tmp_path):
    """The shared tokenizer folder with its ``_pad`` as before 2024-11 (no ``padding_side``)."""
    if not TOKENIZER.is_dir():
        pytest.skip(f"{TOKENIZER} not present")
    pytest.importorskip("tiktoken")
    new = tmp_path / "new"
    shutil.copytree(TOKENIZER, new)
    old = _fresh(tmp_path, "old")
    shutil.copytree(TOKENIZER, old)
    src = (old / "tokenization_chatglm.py").read_text(encoding="utf-8")
    cut = src.replace("            padding_side: Optional[str] = None,\n", "", 1)
    assert cut != src
    (old / "tokenization_chatglm.py").write_text(cut, encoding="utf-8")
    return old, new


def test_old_tokenizer_fails_on_every_text_and_the_shim_fixes_it(old_tokenizer):
    from transformers import AutoTokenizer

    from gluekit.models import load_tokenizer

    old, new = old_tokenizer
    assert inspect_model(old).tokenizer.pad_takes_padding_side is False
    assert inspect_model(new).tokenizer.pad_takes_padding_side is True
    raw = AutoTokenizer.from_pretrained(str(old), trust_remote_code=True)
    with pytest.raises(TypeError, match="padding_side"):
        raw("a")
    with pytest.raises(GluekitError) as e:  # without the flag: gluekit's message, not transformers' prompt
        load_tokenizer(str(old), False)
    assert "--trust-remote-code" in e.value.problems[0]
    fixed, ref = load_tokenizer(str(old), True), load_tokenizer(str(new), True)
    chats = [[{"role": "user", "content": "重庆有什么好吃的?"}], [{"role": "user", "content": "hi"}]]
    a = fixed.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_dict=True)
    b = ref.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_dict=True)
    assert a["input_ids"] == b["input_ids"] and a["input_ids"][1][0] == fixed.pad_token_id  # left-padded, as THUDM's
    with pytest.raises(ValueError, match="pads on the left only"):
        fixed.pad({"input_ids": [[1, 2], [3]]}, padding_side="right")


# ---------------------------------------------------------------- THUDM's real model code (skips without it)

def _revisions():
    if not THUDM:
        return []
    return sorted(p for p in Path(THUDM).iterdir() if (p / "modeling_chatglm.py").is_file()
                  and (p / "configuration_chatglm.py").is_file())


@pytest.mark.skipif(not THUDM, reason="GLUEKIT_THUDM_CODE (folders of THUDM's modeling_chatglm.py revisions) not set")
@pytest.mark.parametrize("code", _revisions() or [None], ids=lambda p: getattr(p, "name", "none"))
def test_thudm_code_under_the_shim(code, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    from gluekit.models import load_model

    bare = write_chatglm_files(_fresh(tmp_path, "bare"), code)
    rc = inspect_model(bare).remote
    assert rc.revision in ("2024-06", "2024-07", "2024-08") and rc.reads_max_length and rc.extracts_past
    assert not rc.calls_post_init and rc.checkpointing_override == (rc.revision != "2024-08")
    with pytest.raises(AttributeError, match="max_length"):
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(bare), trust_remote_code=True),
                                         trust_remote_code=True)
    folder = build_chatglm(_fresh(tmp_path, "tiny"), code=code)
    model = load_model(str(folder), True, dtype=torch.float32)
    ids = torch.tensor([[5, 60, 700, 3000]])
    model.gradient_checkpointing_enable()
    model.train()
    assert model.transformer.encoder.gradient_checkpointing is True
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        got = model.generate(ids, max_new_tokens=4, do_sample=False)[0, 4:].tolist()
        x = ids
        for _ in range(4):  # greedy, no cache (THUDM's config has no eos in the tiny vocabulary's reach here)
            x = torch.cat([x, model(input_ids=x).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    n = len(got)
    assert got == x[0, 4:4 + n].tolist()
