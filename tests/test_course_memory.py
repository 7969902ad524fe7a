"""gluekit.course.memory: the textbook ZeRO split notebook 11 prints, and the autograd counter the memory tests use."""
import torch
from peft import LoraConfig

from gluekit.course.memory import estimate, saved_bytes
from gluekit.lora import lora_trainable_on
from gluekit.models import glm4_9b_config, load_model, meta_model


def test_first_order_estimate_for_notebook_11():
    config = glm4_9b_config()
    total = sum(p.numel() for p in meta_model(config).parameters())
    lora = lora_trainable_on(meta_model(config), LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj"]))
    est = estimate(config, total, lora, tokens=1024, zero_stage=0, devices=8).gib()
    assert (est["weights"], est["trainable_states"], round(est["activations"] + est["logits"], 2), est["total"]) == (17.51, 0.08, 6.15, 23.73)
    full = {stage: estimate(config, total, total, tokens=1024, zero_stage=stage, devices=8).gib() for stage in (0, 1, 2, 3)}
    assert (full[3]["weights"], full[3]["trainable_states"], full[3]["total"]) == (2.19, 17.51, 25.84)
    # ZeRO-1 shards the optimizer states (fp32 master copy + moments: 12 of the 16 bytes), ZeRO-2 the gradients too
    assert [full[s]["trainable_states"] for s in (0, 1, 2)] == [140.07, round(140.07 * (4 + 12 / 8) / 16, 2), 17.51]
    assert (full[1]["total"], full[2]["total"]) == (71.8, 41.16)


def test_saved_bytes_counts_each_layer_and_no_parameter():
    torch.manual_seed(0)
    net = load_model(None, dtype=torch.float32).requires_grad_(True).train()
    ids = torch.randint(0, net.config.vocab_size, (1, 16))
    counted = saved_bytes(net, ids)
    assert len(counted["layers"]) == net.config.num_hidden_layers and all(n > 0 for n in counted["layers"])
    assert counted["final"] > 0 and counted["loss"] >= 4 * net.config.vocab_size * 16  # fp32 log_softmax output
    with torch.no_grad():  # no graph, nothing kept
        assert saved_bytes(net, ids) == {"layers": [0] * net.config.num_hidden_layers, "final": 0, "loss": 0}
