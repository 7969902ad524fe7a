"""gluekit.families: which GLM-4 a folder holds (config.json and tokenizer files as text), the 9B shapes,
and each family end to end on CPU (train, evaluate, resume, chat, merge) from the shipped current config."""
import json
import shutil
import sys
import types

import pytest
import torch
from peft import LoraConfig

from gluekit import load_config
from gluekit.config import shipped_config
from gluekit.errors import GluekitError
from gluekit.families import FAMILIES, STOP_TOKENS, family_by_name, inspect_model, shape_config
from gluekit.lora import lora_trainable_on, resolve_targets
from gluekit.models import meta_model, remote_code_skeleton
from tiny_families import TEMPLATE_0414

QKV = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj"], task_type="CAUSAL_LM")


# ---------------------------------------------------------------- detection, from files only

def _folder(tmp_path, name, config, tokenizer_config=None):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if tokenizer_config is not None:
        (d / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return d


NINE_B = {"hidden_size": 4096, "num_hidden_layers": 40, "vocab_size": 151552}


def test_each_family_and_variant_from_config_json(tmp_path):
    glm = inspect_model(_folder(tmp_path, "hf", {"model_type": "glm", "architectures": ["GlmForCausalLM"], **NINE_B}))
    assert glm.family is FAMILIES["glm"] and glm.variant == "glm-4-9b-chat-hf" and glm.is_9b
    g4 = inspect_model(_folder(tmp_path, "g4", {"model_type": "glm4", **NINE_B}, {"chat_template": TEMPLATE_0414}))
    assert g4.family is FAMILIES["glm4"] and g4.variant == "GLM-4-9B-0414"
    z1 = inspect_model(_folder(tmp_path, "z1", {"model_type": "glm4", **NINE_B},
                               {"chat_template": "[gMASK]<sop>{% if add_generation_prompt %}<|assistant|>\n<think>{% endif %}"}))
    assert z1.variant == "GLM-Z1-9B-0414"  # told apart by the chat template's generation prompt
    raw = {"model_type": "chatglm", "architectures": ["ChatGLMModel"], "padded_vocab_size": 151552, "hidden_size": 4096,
           "num_layers": 40, "auto_map": {"AutoConfig": "configuration_chatglm.ChatGLMConfig"}}
    remote = inspect_model(_folder(tmp_path, "remote", raw))
    assert remote.family is FAMILIES["chatglm"] and remote.variant == "THUDM/glm-4-9b-chat (the original remote-code GLM-4)"
    assert remote.remote.files == {"configuration_chatglm.py": False, "modeling_chatglm.py": False}
    assert remote.remote.revision is None and remote.needs_remote_code
    one_m = inspect_model(_folder(tmp_path, "1m", {**raw, "seq_length": 1048576}))
    assert one_m.variant == "THUDM/glm-4-9b-chat-1m (the original remote-code GLM-4, 1M context)"
    assert inspect_model(None).variant == "the embedded tiny GLM (random weights)"
    assert inspect_model(None).summary() == ("model tiny: the embedded tiny GLM (random weights) (GlmForCausalLM, "
                                             "transformers' own class, no remote code).")


def test_anything_else_is_named_not_guessed(tmp_path):
    qwen = inspect_model(_folder(tmp_path, "qwen", {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}))
    assert qwen.family is None
    assert qwen.summary() == (
        f"model {tmp_path / 'qwen'}: not a GLM-4 model gluekit knows: config.json has model_type 'qwen2', architectures "
        "['Qwen2ForCausalLM']. gluekit trains glm-4-9b-chat-hf (model_type glm), GLM-4-9B-0414 / GLM-Z1-9B-0414 (glm4) "
        "and the remote-code glm-4-9b-chat (chatglm).")
    chatglm3 = inspect_model(_folder(tmp_path, "c3", {"model_type": "chatglm", "padded_vocab_size": 65024}))
    assert chatglm3.family is None and "ChatGLM2/ChatGLM3 (config.json padded_vocab_size 65024" in chatglm3.why_not
    glm4v = inspect_model(_folder(tmp_path, "v", {"model_type": "chatglm", "padded_vocab_size": 151552, "vision_config": {}}))
    assert glm4v.family is None and "GLM-4V" in glm4v.why_not
    with pytest.raises(GluekitError) as e:
        inspect_model(tmp_path / "nowhere")
    assert e.value.problems == [f"model {tmp_path / 'nowhere'}: no such folder. Give a local model folder (config.json, "
                                "tokenizer and weights), or leave --model out for the embedded tiny GLM."]


def test_tiny_instances_are_their_families(tiny_glm4_dir, tiny_chatglm_dir):
    g4 = inspect_model(tiny_glm4_dir)
    assert g4.family.key == "glm4" and not g4.is_9b and g4.tokenizer.kind == "fast"
    assert g4.variant == "a Glm4ForCausalLM model (GLM-4-0414 chat template, not the 9B shape)"
    remote = inspect_model(tiny_chatglm_dir)
    assert remote.family.key == "chatglm" and remote.remote.complete
    rc = remote.remote
    assert (rc.revision, rc.written_for) == ("2024-08", "4.44-4.48")  # the stand-in's generation hook, as 2024-08's
    assert (rc.reads_max_length, rc.reads_use_cache, rc.calls_post_init, rc.extracts_past, rc.checkpointing_override) == (
        True, True, False, True, False)


# ---------------------------------------------------------------- the 9B shapes, on the meta device

def test_9b_shapes_count_as_published():
    for key, fam in FAMILIES.items():
        net = meta_model(fam.config_9b())
        assert sum(p.numel() for p in net.parameters()) == fam.params_9b, key
        # lora-0414.yaml's q/k/v names on every family: three adapters on the native ones, one fused on the remote one
        pc = LoraConfig(r=8, lora_alpha=32, target_modules=resolve_targets(net, ["q_proj", "k_proj", "v_proj"]).target_modules)
        assert lora_trainable_on(net, pc) == (2_785_280 if fam.remote_code else 5_406_720), key
    assert FAMILIES["glm4"].params_9b - FAMILIES["glm"].params_9b == 40 * 2 * 4096  # two more norms per layer
    assert FAMILIES["glm4"].config_9b().max_position_embeddings == 32768 and FAMILIES["glm4"].config_9b().rms_norm_eps == 1e-5
    assert all(f.stop_tokens == STOP_TOKENS == ("<|endoftext|>", "<|user|>", "<|observation|>") for f in FAMILIES.values())


def test_names_and_folders_give_the_same_shape(tmp_path):
    assert [family_by_name(n).key for n in ("glm-4-9b", "GLM-4-9B-Chat-HF", "glm-4-9b-0414", "GLM-Z1-9B-0414",
                                             "glm-4-9b-chat", "THUDM/glm-4-9b-chat")] == ["glm", "glm", "glm4", "glm4",
                                                                                         "chatglm", "chatglm"]
    assert family_by_name("llama-3-8b") is None
    raw = {"model_type": "chatglm", "padded_vocab_size": 151552, "hidden_size": 4096, "ffn_hidden_size": 13696,
           "num_layers": 40, "num_attention_heads": 32, "multi_query_group_num": 2, "kv_channels": 128}
    from_folder = meta_model(shape_config(inspect_model(_folder(tmp_path, "r", raw))))
    skeleton = remote_code_skeleton()
    assert [(n, p.shape) for n, p in from_folder.named_parameters()] == [(n, p.shape) for n, p in skeleton.named_parameters()]


# ---------------------------------------------------------------- end to end, per family

def _fake_swanlab():
    """A stand-in ``swanlab`` package whose Trainer callback records what the run gives it."""
    from transformers import TrainerCallback

    class SwanLabCallback(TrainerCallback):
        made = []

        def __init__(self, project=None):
            self.project, self.logged = project, []
            SwanLabCallback.made.append(self)

        def on_log(self, args, state, control, logs=None, **kw):
            self.logged.append(dict(logs or {}))

    mods = {name: types.ModuleType(name) for name in ("swanlab", "swanlab.integration", "swanlab.integration.transformers")}
    mods["swanlab.integration.transformers"].SwanLabCallback = SwanLabCallback
    return mods, SwanLabCallback


def _overrides(out):
    # GLM-4's current lora.yaml as shipped, cut to 4 steps for a tiny model on CPU (no DeepSpeed, no workers)
    return ["training_args.deepspeed=null", "training_args.dataloader_num_workers=0", "training_args.max_steps=4",
            "training_args.save_steps=2", "training_args.eval_steps=4", "training_args.logging_steps=1",
            "training_args.per_device_train_batch_size=2", "training_args.per_device_eval_batch_size=4",
            "training_args.generation_config.max_new_tokens=4", "training_args.log_level=warning",
            f"training_args.output_dir={out}"]


@pytest.fixture(scope="module", params=["glm4", "chatglm"])
def family_run(request, tiny_glm4_dir, tiny_chatglm_dir, family_data, tmp_path_factory):
    from gluekit.train import train

    fam = request.param
    folder = tiny_glm4_dir if fam == "glm4" else tiny_chatglm_dir
    out = tmp_path_factory.mktemp(f"run-{fam}") / "out"
    extra = ["swanlab=local"] if fam == "glm4" else []
    cfg = load_config(shipped_config("lora-0414.yaml"), _overrides(out) + extra)
    mods, callback = _fake_swanlab()
    with pytest.MonkeyPatch.context() as mp:
        for name, mod in mods.items():
            mp.setitem(sys.modules, name, mod)
        mp.setattr("gluekit.tracking.swanlab_installed", lambda: True)
        for var in ("SWANLAB_PROJ_NAME", "SWANLAB_MODE"):
            mp.delenv(var, raising=False)
        result = train(cfg, family_data, str(folder), trust_remote_code=fam == "chatglm", print_logs=False)
        import os

        env = {k: os.environ.get(k) for k in ("SWANLAB_PROJ_NAME", "SWANLAB_MODE")}
    return fam, folder, out, cfg, result, callback.made, env


def test_trains_and_evaluates_with_the_current_config(family_run):
    from gluekit.checkpoints import list_checkpoints, training_log
    from gluekit.models import base_model

    fam, _, out, _, result, _, _ = family_run
    model = base_model(result.trainer.model)
    assert type(model).__name__ == {"glm4": "Glm4ForCausalLM", "chatglm": "ChatGLMForConditionalGeneration"}[fam]
    assert type(model).__module__.startswith("transformers_modules") == (fam == "chatglm")
    trainable = sum(p.numel() for p in result.trainer.model.parameters() if p.requires_grad)
    # r 8 on q/k/v of a 64-wide model with 2 layers: 2 x 8 x (3 x 64 + 128) as three adapters, 2 x 8 x (64 + 128) fused
    assert trainable == {"glm4": 5120, "chatglm": 3072}[fam]
    if fam == "glm4":
        assert result.lora_note is None
    else:
        assert result.lora_note == (
            "target_modules: this is the remote-code GLM-4 model (q, k and v fused), so the native names were mapped "
            "(q_proj, k_proj, v_proj -> query_key_value). At r=8 that is ONE adapter on the fused layer: 3,072 trainable "
            "parameters; three separate q/k/v adapters on a native model would have 5,120.")
    log = training_log(out)
    losses = [e["loss"] for e in log if "loss" in e]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert [e["step"] for e in log if "eval_rouge-1" in e] == [4]
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    # lora-0414.yaml tests on dev.jsonl, as the reference does (3 conversations here)
    assert result.test_metrics["test_samples"] == 3 and "test_bleu-4" in result.test_metrics


def test_swanlab_key_sets_the_references_environment_and_reports(family_run):
    fam, _, _, cfg, _, made, env = family_run
    if fam != "glm4":
        assert made == [] and env == {"SWANLAB_PROJ_NAME": None, "SWANLAB_MODE": None}  # no key, nothing done
        return
    assert cfg.swanlab == "local" and env == {"SWANLAB_PROJ_NAME": "GLM4-Finetune", "SWANLAB_MODE": "local"}
    assert len(made) == 1 and made[0].project == "GLM4-Finetune"
    assert [e["loss"] for e in made[0].logged if "loss" in e] == [e["loss"] for e in family_run[4].trainer.state.log_history
                                                                  if "loss" in e]


def test_resume_continues_to_the_same_adapter(family_run, family_data):
    from safetensors.torch import load_file

    from gluekit.train import train

    fam, folder, out, _, _, _, _ = family_run
    other = out.parent / "resumed"
    shutil.copytree(out / "checkpoint-2", other / "checkpoint-2")
    cfg = load_config(shipped_config("lora-0414.yaml"), _overrides(other) + ["training_args.eval_strategy=no"])
    res = train(cfg, family_data, str(folder), resume=2, trust_remote_code=fam == "chatglm", print_logs=False)
    assert res.resumed_from.name == "checkpoint-2"
    a = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(other / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


def test_chat_uses_the_familys_template_stop_tokens_and_cache(family_run):
    from gluekit.evaluate import generate_replies
    from gluekit.generate import chat, load_with_adapter
    from gluekit.tokens import SpecialIds

    fam, folder, out, _, _, _, _ = family_run
    model, tok = load_with_adapter(str(folder), out / "adapter", fam == "chatglm")
    stops = [tok.convert_tokens_to_ids(t) for t in STOP_TOKENS]
    assert SpecialIds.of(tok).stop == stops and list(model.generation_config.eos_token_id) == stops
    chat_ = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": ""}, {"role": "system", "content": "S"},
             {"role": "user", "content": "Q2"}]
    text = tok.apply_chat_template(chat_, add_generation_prompt=True, tokenize=False)
    # GLM-4-0414's template moves system messages to the front and keeps an empty assistant turn; GLM-4-9B-chat's does not
    assert text == {"glm4": "[gMASK]<sop><|system|>\nS<|user|>\nQ1<|assistant|>\n<|user|>\nQ2<|assistant|>",
                    "chatglm": "[gMASK]<sop><|user|>\nQ1<|system|>\nS<|user|>\nQ2<|assistant|>"}[fam]
    reply = chat(model, tok, "重庆有什么好吃的?", max_new_tokens=6)
    prompt = tok.apply_chat_template([{"role": "user", "content": "重庆有什么好吃的?"}], add_generation_prompt=True,
                                     return_dict=False)
    ids = torch.tensor([prompt])
    with torch.no_grad():  # greedy decoding without any cache, one full forward pass per token
        for _ in range(6):
            nxt = model(input_ids=ids).logits[0, -1].argmax()
            if nxt.item() in stops:
                break
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    assert reply == tok.decode(ids[0, len(prompt):], skip_special_tokens=True).strip()
    other = tok.apply_chat_template([{"role": "user", "content": "去天津应该去哪里玩? 请简洁地回答。"}],
                                    add_generation_prompt=True, return_dict=False)
    # a left-padded batch of two gives each prompt's own reply
    assert generate_replies(model, tok, [prompt, list(other)], max_new_tokens=6) == [
        reply, generate_replies(model, tok, [list(other)], max_new_tokens=6)[0]]


def test_merge_folds_the_adapter_into_a_model_that_loads_again(family_run, tmp_path):
    from gluekit.generate import load_with_adapter, merge_adapter
    from gluekit.models import load_model

    fam, folder, out, _, _, _, _ = family_run
    trust = fam == "chatglm"
    merged_dir = merge_adapter(out / "adapter", tmp_path / "merged", str(folder), trust)
    assert (merged_dir / "model.safetensors").is_file()
    assert ((merged_dir / "modeling_chatglm.py").is_file()) == trust  # remote code travels with the weights
    peft_model, _ = load_with_adapter(str(folder), out / "adapter", trust)
    merged = load_model(str(merged_dir), trust)
    ids = torch.tensor([[5, 60, 700, 3000, 42]])
    with torch.no_grad():
        assert (peft_model(input_ids=ids).logits - merged(input_ids=ids).logits).abs().max().item() < 1e-5
