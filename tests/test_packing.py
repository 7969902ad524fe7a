"""Padding-free packing (``packing: true``): same logits per sample, same loss, same training."""
import pytest
import torch

from gluekit import load_config
from gluekit.checkpoints import training_log
from gluekit.data import build_train_dataset, read_jsonl
from gluekit.tokens import IGNORE_INDEX
from gluekit.errors import ConfigError
from gluekit.packing import PackCollator, packing_problem
from gluekit.train import train
from gluekit.trainer import PadCollator

N_SAMPLES = 6  # demo conversations of 20-60 tokens: several boundaries in one packed row


@pytest.fixture(scope="module")
def features(tok, demo_dir):
    rows = read_jsonl(demo_dir / "train.jsonl")[:N_SAMPLES]
    ds, _ = build_train_dataset(rows, tok, combine=False, max_input_length=256, max_output_length=64)
    return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope="module")
def model():
    from gluekit.models import load_model

    return load_model(None).eval()


def test_collator_makes_one_row_with_restarting_positions(features):
    batch = PackCollator()(features)
    lengths = [len(f["input_ids"]) for f in features]
    assert len(set(lengths)) > 1  # different lengths: a padded batch would carry padding
    assert set(batch) == {"input_ids", "labels", "position_ids", "use_cache"}  # no attention_mask, no padding
    assert batch["use_cache"] is False
    assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape == (1, sum(lengths))
    starts = [sum(lengths[:k]) for k in range(len(lengths))]
    positions = batch["position_ids"][0].tolist()
    assert [i for i, p in enumerate(positions) if p == 0] == starts
    labels = batch["labels"][0].tolist()
    assert all(labels[s] == IGNORE_INDEX for s in starts)  # no prediction across a sample boundary
    assert labels == sum(([IGNORE_INDEX] + list(f["labels"][1:]) for f in features), [])
    # GLM-4 samples start with [gMASK] (never a target): dropping the first label loses no target
    assert sum(t != IGNORE_INDEX for t in labels) == sum(t != IGNORE_INDEX for f in features for t in f["labels"])


def _split_logits(model, batch, lengths):
    with torch.no_grad():
        logits = model(**batch).logits[0]
    return list(torch.split(logits, lengths))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_no_attention_across_samples(model, features, attn):
    model.set_attn_implementation(attn)
    try:
        lengths = [len(f["input_ids"]) for f in features]
        batch = PackCollator()(features)
        packed = _split_logits(model, batch, lengths)
        with torch.no_grad():
            alone = [model(input_ids=torch.tensor([f["input_ids"]])).logits[0] for f in features]
        assert max((p - a).abs().max().item() for p, a in zip(packed, alone)) < 1e-5
        # Why the collator sends use_cache=False: with a cache, transformers skips the packed-sequence
        # mask and every sample attends to the ones before it.
        leaky = _split_logits(model, {**batch, "use_cache": True}, lengths)
        assert max((p - a).abs().max().item() for p, a in zip(leaky[1:], alone[1:])) > 1e-2
    finally:
        model.set_attn_implementation("sdpa")


@pytest.mark.parametrize("targets", ["replies", "every token"])
def test_packed_loss_equals_padded_loss(model, tok, features, targets):
    if targets == "every token":  # a label on each sample's first token too: packing must not let the
        # last token of sample k learn to predict it (the padded batch never predicts a row's first token)
        features = [{"input_ids": f["input_ids"], "labels": list(f["input_ids"])} for f in features]
    packed = PackCollator()(features)
    padded = PadCollator(tok.pad_token_id)(features)
    assert (padded["attention_mask"] == 0).any()  # the padded batch really carries padding
    with torch.no_grad():
        a = model(**packed).loss.item()
        b = model(**padded).loss.item()
    assert a == pytest.approx(b, abs=1e-5)


def test_packing_refuses_remote_code_models(model):
    assert packing_problem(model) is None

    class RemoteGlm(torch.nn.Module):  # stands in for THUDM/glm-4-9b-chat's own modelling file
        config = model.config

    RemoteGlm.__module__ = "transformers_modules.glm_4_9b_chat.modeling_chatglm"
    assert "remote code" in packing_problem(RemoteGlm())


def test_config_key(configs):
    assert load_config(f"{configs}/tiny.yaml").packing is False
    cfg = load_config(f"{configs}/tiny.yaml", ["packing=true"])
    assert cfg.packing is True and cfg.to_dict()["packing"] is True
    assert "packing" not in load_config(f"{configs}/tiny.yaml").to_dict()
    for bad, words in (("yes", "YAML 1.2"), ("1", "instead of a number"), ("'true'", "must be true or false")):
        with pytest.raises(ConfigError) as e:
            load_config(f"{configs}/tiny.yaml", [f"packing={bad}"])
        assert "`packing`: must be true or false" in str(e.value) and words in str(e.value)
    one = load_config(f"{configs}/tiny.yaml", ["packing=true", "training_args.per_device_train_batch_size=1"])
    assert any("changes nothing" in n for n in one.notes)


STEPS = 4


def _run(configs, demo_dir, out, packing):
    cfg = load_config(f"{configs}/tiny.yaml", [
        f"packing={str(packing).lower()}", f"training_args.max_steps={STEPS}", "training_args.logging_steps=1",
        "training_args.eval_strategy=no", "training_args.save_strategy=no", "training_args.log_level=warning",
        f"training_args.output_dir={out}", "data_config.test_file=null"])
    result = train(cfg, demo_dir, print_logs=False)
    losses = [e["loss"] for e in training_log(out) if "loss" in e]
    adapter = {k: v.detach().clone() for k, v in result.trainer.model.named_parameters() if "lora_" in k}
    return losses, adapter


def test_training_with_packing_learns_like_padding(configs, demo_dir, tmp_path):
    packed_losses, packed = _run(configs, demo_dir, tmp_path / "packed", True)
    padded_losses, padded = _run(configs, demo_dir, tmp_path / "padded", False)
    assert len(packed_losses) == STEPS and all(torch.isfinite(torch.tensor(packed_losses)))
    assert packed_losses[-1] < packed_losses[0]  # it learns (lr 3e-3 on the demo task)
    assert max(v.abs().max().item() for k, v in packed.items() if "lora_B" in k) > 0  # B starts at zero
    assert packed_losses[0] == pytest.approx(padded_losses[0], abs=1e-5)  # same samples, same first-step loss
    # Same losses and gradients at every step: the runs stay together to float rounding.
    assert packed_losses == pytest.approx(padded_losses, abs=1e-3)
    assert max((packed[k] - padded[k]).abs().max().item() for k in packed) < 1e-4
