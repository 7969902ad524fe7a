import pytest
from peft import LoraConfig, get_peft_model

from gluekit import ConfigError, lora_scaling, resolve_targets
from gluekit.lora import apply_peft, count_parameters, format_count, linear_names, lora_trainable_on
from gluekit.models import load_model, meta_model, remote_code_skeleton


@pytest.fixture(scope="module")
def glm9b():
    return meta_model()


def test_glm4_9b_shape_on_meta_device(glm9b):
    assert count_parameters(glm9b)[1] == 9_399_951_360
    assert count_parameters(remote_code_skeleton())[1] == 9_399_951_360


def test_native_qkv_r8_count(glm9b):
    cfg = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj"], task_type="CAUSAL_LM")
    n = lora_trainable_on(glm9b, cfg)
    assert n == 5_406_720
    assert n + 9_399_951_360 == 9_405_358_080


def test_remote_code_fused_qkv_reproduces_published_count():
    n = lora_trainable_on(remote_code_skeleton(), LoraConfig(r=8, lora_alpha=32, target_modules=["query_key_value"]))
    assert n == 2_785_280
    assert format_count(n, n + 9_399_951_360) == "trainable params: 2,785,280 || all params: 9,402,736,640 || trainable%: 0.0296"


def test_seed_target_name_maps_to_native_names(glm9b):
    res = resolve_targets(glm9b, ["query_key_value"])
    assert res.target_modules == ["q_proj", "k_proj", "v_proj"]
    assert "query_key_value -> q_proj, k_proj, v_proj" in res.note
    assert resolve_targets(glm9b, ["dense_h_to_4h", "dense_4h_to_h"]).target_modules == ["gate_up_proj", "down_proj"]
    assert resolve_targets(glm9b, "all-linear").note is None


def test_native_names_map_onto_the_fused_remote_model_with_both_counts(glm9b):
    remote = remote_code_skeleton()
    res = resolve_targets(remote, ["q_proj", "k_proj", "v_proj", "o_proj"], 8)
    assert res.target_modules == ["query_key_value", "dense"]
    assert res.note == (
        "target_modules: this is the remote-code GLM-4 model (q, k and v fused), so the native names were mapped "
        "(q_proj, k_proj, v_proj -> query_key_value; o_proj -> dense). At r=8 that is ONE adapter on the fused layer: "
        "2,785,280 trainable parameters; three separate q/k/v adapters on a native model would have 5,406,720.")
    assert resolve_targets(glm9b, ["query_key_value"], 8).note == (
        "target_modules: this is a native GLM model, so the remote-code names were mapped (query_key_value -> q_proj, "
        "k_proj, v_proj). At r=8 that is three adapters: 5,406,720 trainable parameters; the remote-code model's one "
        "fused query_key_value adapter has 2,785,280.")
    with pytest.raises(ConfigError) as e:  # q and v alone cannot be one adapter on the fused layer
        resolve_targets(remote, ["q_proj", "v_proj"])
    assert e.value.problems == [
        "`peft_config.target_modules`: ['q_proj', 'v_proj'] name part of this remote-code model's fused query_key_value "
        "layer, got ['q_proj', 'v_proj']. One adapter on query_key_value trains q, k and v together: write "
        "[query_key_value] (or all three of q_proj, k_proj, v_proj)."]


def test_unknown_target_lists_the_linear_layers(glm9b):
    with pytest.raises(ConfigError) as e:
        resolve_targets(glm9b, ["qkv_proj"])
    assert "['qkv_proj'] match no layer of this model" in str(e.value)
    assert "down_proj, gate_up_proj, k_proj, lm_head, o_proj, q_proj, v_proj" in str(e.value)
    assert linear_names(glm9b) == ["down_proj", "gate_up_proj", "k_proj", "lm_head", "o_proj", "q_proj", "v_proj"]


@pytest.mark.parametrize("r,alpha,rs", [(8, 32, False), (16, 32, False), (8, 32, True), (64, 16, True)])
def test_scaling_matches_peft(r, alpha, rs):
    model = load_model()
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, use_rslora=rs, target_modules=["q_proj"]))
    layer = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == pytest.approx(lora_scaling(r, alpha, rs))


def test_apply_peft_on_the_tiny_model_maps_and_counts():
    model = load_model()
    peft_model, note = apply_peft(model, LoraConfig(r=8, lora_alpha=32, target_modules=["query_key_value"], task_type="CAUSAL_LM"), verbose=False)
    assert note is not None
    trainable, _ = count_parameters(peft_model)
    cfg = model.config
    per_layer = 8 * (cfg.hidden_size + cfg.num_attention_heads * cfg.head_dim) + 2 * 8 * (cfg.hidden_size + cfg.num_key_value_heads * cfg.head_dim)
    assert trainable == per_layer * cfg.num_hidden_layers


def test_apply_peft_leaves_the_callers_config_as_it_was():
    model = load_model()
    cfg = LoraConfig(r=8, lora_alpha=32, target_modules=["query_key_value"], task_type="CAUSAL_LM")
    before = cfg.to_dict()
    peft_model, note = apply_peft(model, cfg, verbose=False)
    assert "query_key_value -> q_proj, k_proj, v_proj" in note
    assert cfg.to_dict() == before and cfg.target_modules == {"query_key_value"}
    used = peft_model.peft_config["default"]
    assert used is not cfg and used.target_modules == {"q_proj", "k_proj", "v_proj"}
    # names that need no mapping: still a copy (PEFT itself writes the base model's name into its config)
    plain = LoraConfig(r=4, target_modules=["q_proj"])
    before = plain.to_dict()
    peft_model, note = apply_peft(load_model(), plain, verbose=False)
    assert note is None and plain.to_dict() == before and peft_model.peft_config["default"] is not plain


def test_with_adapters_injects_into_a_copy_and_leaves_the_config():
    from gluekit.lora import with_adapters
    from gluekit.models import meta_model

    net, config = meta_model(), LoraConfig(r=8, target_modules=["q_proj"])
    adapted = with_adapters(net, config)
    assert adapted is not net and not any("lora_" in n for n, _ in net.named_parameters())
    lora = {n: p.shape for n, p in adapted.named_parameters() if "lora_" in n}
    assert len(lora) == 2 * 40 and lora["model.layers.0.self_attn.q_proj.lora_A.default.weight"] == (8, 4096)
    assert config.target_modules == {"q_proj"} and with_adapters(net, config, in_place=True) is net
