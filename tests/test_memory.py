"""The peak-memory estimate against what autograd really keeps (saved_tensors_hooks), and `gluekit plan`'s memory lines.

No RSS, no timing: the measured-peak comparison lives in benchmarks/bench_memory.py.
"""
import copy
import json

import pytest
import torch
from peft import LoraConfig

from gluekit import load_config
from gluekit.cli import main
from gluekit.lora import apply_peft, count_parameters, lora_trainable_on
from gluekit.course.memory import saved_bytes
from gluekit.memory import LOGIT_BYTES, count_trainables, model_config_for, peak_memory, plan_memory, planned_dtype
from gluekit.models import glm4_9b_config, load_model, meta_model

B, T = 2, 48  # 96 tokens: a fraction of a second per forward pass
# The target is agreement within 15%; the formulas count every kept tensor, so anything over 2% is a
# wrong or missing term (a dropout mask in the wrong dtype alone is 11% of a layer).
TOL = 0.02
LORA_YAML_KIND = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["query_key_value"], task_type="CAUSAL_LM")


@pytest.fixture(scope="module")
def tiny_conf():
    return model_config_for(None)


def _counted(peft_config, dtype, checkpointing=False):
    torch.manual_seed(0)
    net = load_model(None, dtype=dtype)
    if peft_config is None:
        net.requires_grad_(True)
    else:
        net, _ = apply_peft(net, copy.deepcopy(peft_config), verbose=False)
    if checkpointing:
        net.get_base_model().activation_checkpointing_enable() if peft_config else net.activation_checkpointing_enable()
    net.train()
    return saved_bytes(net, torch.randint(0, net.config.vocab_size, (B, T)))


def _estimated(conf, peft_config, dtype, checkpointing=False):
    return peak_memory(conf, count_trainables(conf, peft_config), batch=B, seq_len=T, dtype=dtype, device="cpu",
                       gradient_checkpointing=checkpointing)


@pytest.mark.parametrize("kind", ["tiny.yaml", "lora.yaml-like"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_lora_components_match_saved_tensor_bytes(configs, tiny_conf, kind, dtype):
    pc = load_config(f"{configs}/tiny.yaml").peft_config_object() if kind == "tiny.yaml" else LORA_YAML_KIND
    counted = _counted(pc, getattr(torch, dtype))
    est = _estimated(tiny_conf, pc, dtype)
    assert est.activations == pytest.approx(sum(counted["layers"]) + counted["final"], rel=TOL)
    per_token = est.detail["per_token"]
    assert per_token["layer_0"] != per_token["layer"]  # layer 0 passes no gradient to the frozen embeddings
    for i, n in enumerate(counted["layers"]):
        part = per_token["layer_0" if i == 0 else "layer"]
        assert sum(part.values()) * B * T + est.detail["rope_per_layer"] == pytest.approx(n, rel=TOL)
    # of the 12 bytes per logit at the peak, 4 are log_softmax's saved fp32 output
    assert est.logits * 4 / LOGIT_BYTES == pytest.approx(counted["loss"], rel=TOL)


def test_full_finetuning_components_match_saved_tensor_bytes(tiny_conf):
    counted = _counted(None, torch.bfloat16)
    est = _estimated(tiny_conf, None, "bfloat16")
    logits_saved = est.logits * 4 / LOGIT_BYTES
    assert est.activations + logits_saved == pytest.approx(sum(counted["layers"]) + counted["final"] + counted["loss"], rel=TOL)
    assert est.trainable_states == 16 * count_parameters(load_model(None))[1]


def test_checkpointing_keeps_only_layer_inputs(configs, tiny_conf):
    pc = load_config(f"{configs}/tiny.yaml").peft_config_object()
    counted = _counted(pc, torch.float32, checkpointing=True)
    on, off = _estimated(tiny_conf, pc, "float32", True), _estimated(tiny_conf, pc, "float32", False)
    h = tiny_conf.hidden_size
    assert counted["layers"] == [4 * h * B * T] * tiny_conf.num_hidden_layers  # the checkpoint holds each input
    assert on.activations == pytest.approx(sum(counted["layers"]) + counted["final"], rel=TOL)
    assert on.activations < off.activations / 2  # far more than halved
    assert on.logits == off.logits and on.weights == off.weights
    assert on.total < off.total


def test_parameter_counts_come_from_peft_on_the_meta_device(configs, tiny_conf):
    cfg = load_config(f"{configs}/tiny.yaml")
    counted = count_trainables(tiny_conf, cfg.peft_config_object())
    real, _ = apply_peft(load_model(None), cfg.peft_config_object(), verbose=False)
    assert (counted.trainable_params, counted.total_params + counted.trainable_params) == count_parameters(real)
    glm = count_trainables(glm4_9b_config(), LORA_YAML_KIND)  # q/k/v after name mapping
    assert glm.trainable_params == 5_406_720 == lora_trainable_on(meta_model(), LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj"]))
    assert LORA_YAML_KIND.target_modules == {"query_key_value"}  # the caller's config keeps its names
    assert [s.name for s in glm.sites] == ["q_proj", "k_proj", "v_proj"] and all(s.dropout == 0.1 for s in glm.sites)


def test_scaling_rules(tiny_conf):
    tr = count_trainables(tiny_conf, LORA_YAML_KIND)
    one = peak_memory(tiny_conf, tr, batch=1, seq_len=256, dtype="bfloat16")
    two = peak_memory(tiny_conf, tr, batch=2, seq_len=256, dtype="bfloat16")
    assert two.logits == 2 * one.logits and two.activations == pytest.approx(2 * one.activations, rel=0.01)  # RoPE cos/sin: per position, not per row
    assert two.weights == one.weights and two.trainable_states == one.trainable_states
    fp32 = peak_memory(tiny_conf, tr, batch=1, seq_len=256, dtype="float32")
    assert fp32.weights == 2 * one.weights and fp32.logits == one.logits  # the loss is fp32 either way
    z3 = peak_memory(tiny_conf, tr, batch=1, seq_len=256, dtype="bfloat16", zero_stage=3, devices=8)
    assert z3.weights == one.weights / 8 and z3.activations == one.activations
    # CUDA's fused dropout keeps a 1-byte mask, the CPU path a 4-byte one (in the fp32 adapter dtype)
    cpu = peak_memory(tiny_conf, tr, batch=1, seq_len=256, dtype="bfloat16", device="cpu")
    assert cpu.activations > one.activations


def test_glm4_9b_in_bf16(configs):
    cfg = load_config(f"{configs}/lora.yaml")
    p = plan_memory(cfg, glm4_9b_config(), model_name="glm-4-9b", dtype=planned_dtype("glm-4-9b"))
    assert p.dtype == "bfloat16" and p.seq_len == 1025 and p.batch == 1
    off, on = p.without_checkpointing, p.with_checkpointing
    assert off.weights / 2 ** 30 == pytest.approx(17.51, abs=0.01)  # 9.4e9 parameters x 2 bytes
    assert off.logits == 12 * 151552 * 1025
    assert 5 * 2 ** 30 < off.activations < 10 * 2 ** 30  # about 190 kB per token and layer
    assert on.activations == 40 * 2 * 4096 * 1025 + (4 * 4096 + 4) * 1025
    assert p.applies is off and not p.gradient_checkpointing


def test_planned_dtype_and_the_trainer_default_batch(tmp_path, tiny_conf):
    import torch
    from transformers import Seq2SeqTrainingArguments

    assert planned_dtype(None) == planned_dtype("tiny") == ("bfloat16" if torch.cuda.is_available() else "float32")
    assert planned_dtype("glm-4-9b") == planned_dtype("/models/glm-4-9b-chat-hf") == "bfloat16"
    no_batch = tmp_path / "no_batch.yaml"  # per_device_train_batch_size left to the Trainer's default
    no_batch.write_text("data_config: {train_file: train.jsonl}\nmax_input_length: 16\nmax_output_length: 8\n"
                        "training_args: {output_dir: ./out, max_steps: 2}\npeft_config: {peft_type: LORA, r: 2, "
                        "target_modules: [q_proj]}\n", encoding="utf-8")
    p = plan_memory(load_config(no_batch), tiny_conf, dtype="float32")
    assert p.batch == Seq2SeqTrainingArguments(output_dir="unused").per_device_train_batch_size == 8
    assert p.seq_len == 25 and p.dtype == "float32"


def test_chatglm_config_json_reads_as_the_native_shape(tmp_path):
    raw = {"model_type": "chatglm", "padded_vocab_size": 151552, "hidden_size": 4096, "ffn_hidden_size": 13696,
           "num_layers": 40, "num_attention_heads": 32, "multi_query_group_num": 2, "kv_channels": 128}
    (tmp_path / "config.json").write_text(json.dumps(raw), encoding="utf-8")
    c, ref = model_config_for(str(tmp_path)), glm4_9b_config()
    for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_key_value_heads", "head_dim"):
        assert getattr(c, k) == getattr(ref, k)


def test_cli_prints_memory_lines(capsys, configs):
    assert main(["plan", f"{configs}/tiny.yaml"]) == 0
    out = capsys.readouterr().out
    assert "steps per epoch 75" in out and "peak memory per device (tiny GLM, float32 weights; longest batch 8 x 321 tokens" in out
    for label in ("weights", "trainable + grads + AdamW", "activations", "logits (fp32 loss)", "total"):
        assert f"\n  {label} " in out
    assert "checkpointing off   checkpointing on" in out and "applies: checkpointing off" in out
    assert main(["plan", f"{configs}/lora.yaml", "--model", "glm-4-9b", "-o", "training_args.gradient_checkpointing=true"]) == 0
    out = capsys.readouterr().out
    assert "glm-4-9b, bfloat16 weights" in out and "17.51 GiB" in out and "applies: checkpointing on" in out


def test_cli_json_and_unmodelled_methods(capsys, configs):
    assert main(["plan", f"{configs}/tiny.yaml", "--json"]) == 0
    mem = json.loads(capsys.readouterr().out)["memory"]
    assert mem["method"] == "LORA" and mem["trainable_params"] == 73_728
    on, off = mem["bytes"]["checkpointing_on"], mem["bytes"]["checkpointing_off"]
    assert on["logits"] == off["logits"] == 12 * 8010 * 8 * 321 and on["activations"] < off["activations"]
    assert main(["plan", f"{configs}/ptuning_v2.yaml"]) == 0
    assert "peak memory: not estimated (`peft_config.peft_type`" in capsys.readouterr().out


@pytest.mark.parametrize("checkpointing", [False, True])
def test_label_only_logits_keep_logits_only_for_label_positions(configs, tiny_conf, checkpointing):
    # gluekit's Trainer computes logits only where a label is predicted (gluekit.loss): the loss keeps
    # 4 bytes x vocabulary for each of those positions and nothing for the prompt
    pc = load_config(f"{configs}/tiny.yaml").peft_config_object()
    torch.manual_seed(0)
    net, _ = apply_peft(load_model(None, dtype=torch.float32), copy.deepcopy(pc), verbose=False)
    if checkpointing:
        net.get_base_model().activation_checkpointing_enable()
    net.train()
    ids = torch.randint(0, net.config.vocab_size, (B, T))
    labels = ids.clone()
    labels[:, : T - 8] = -100  # an 8-token reply per row: 8 positions predict it (the last of them the 8th)
    full = saved_bytes(net, ids, labels)
    kept = saved_bytes(net, ids, labels, label_only=True)
    est = peak_memory(tiny_conf, count_trainables(tiny_conf, pc), batch=B, seq_len=T, dtype="float32", device="cpu",
                      gradient_checkpointing=checkpointing, label_tokens=B * 8)
    assert est.detail["logit_rows"] == B * 8
    assert kept["loss"] == pytest.approx(4 * tiny_conf.vocab_size * B * 8, rel=TOL)  # log_softmax's fp32 output
    assert full["loss"] >= 4 * tiny_conf.vocab_size * B * T  # the model's own loss keeps every position
    assert sum(kept["layers"]) == sum(full["layers"])  # the decoder keeps the same tensors either way
    bound = peak_memory(tiny_conf, count_trainables(tiny_conf, pc), batch=B, seq_len=T, dtype="float32", device="cpu",
                        gradient_checkpointing=checkpointing)
    assert est.total < bound.total


def test_zero_stage_1_shards_the_fp32_master_copy_with_the_moments():
    from gluekit.memory import state_bytes

    n, d = 1000, 8
    assert state_bytes(n, 0, d) == (4 * n, 4 * n, 8 * n)
    assert state_bytes(n, 1, d) == (4 * n / d, 4 * n, 8 * n / d)  # the optimizer states: fp32 master + both moments
    assert state_bytes(n, 2, d) == (4 * n / d, 4 * n / d, 8 * n / d)
    assert state_bytes(n, 3, d) == state_bytes(n, 2, d)  # stage 3 adds the load-dtype weights (peak_memory)


def test_full_fine_tuning_with_zero_2_on_8_gpus(capsys, configs):
    """sft.yaml on GLM-4-9B with ds_zero_2.json: every model state but the bf16 weights is sharded 8 ways."""
    from gluekit.cli import main

    assert main(["plan", f"{configs}/sft.yaml", "--model", "glm-4-9b", "--devices", "8", "--json",
                 "-o", "training_args.deepspeed=ds_zero_2.json"]) == 0  # planned without the deepspeed package
    m = json.loads(capsys.readouterr().out)["memory"]
    off = m["bytes"]["checkpointing_off"]
    assert m["zero_stage"] == 2 and m["method"] == "FULL" and m["trainable_params"] == 9_399_951_360
    assert off["trainable_states"] == 16 * 9_399_951_360 / 8  # fp32 copy 4 + grads 4 + moments 8, all / 8
    assert round(off["weights"] / 2 ** 30, 2) == 17.51 and round(off["total"] / 2 ** 30, 1) == 42.1
