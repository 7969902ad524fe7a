"""Label-only logits (gluekit.loss): the same loss and gradients as the full-logits path, fewer logits."""
import pytest
import torch

from gluekit import load_config
from gluekit.data import build_train_dataset, read_jsonl
from gluekit.tokens import IGNORE_INDEX
from gluekit.loss import label_only_inputs, supports_label_only_logits
from gluekit.packing import PackCollator
from gluekit.train import PreparedData
from gluekit.trainer import PadCollator, build_trainer

X = IGNORE_INDEX


def test_keeps_the_positions_that_predict_a_label():
    labels = torch.tensor([[X, X, 5, 6, X], [X, 7, X, X, 8]])
    out = label_only_inputs({"input_ids": torch.zeros(2, 5, dtype=torch.long), "labels": labels})
    # position t predicts token t+1: row 0 keeps 1, 2 (-> 5, 6); row 1 keeps 0 (-> 7) and 3 (-> 8)
    assert out["logits_to_keep"].tolist() == [[False, True, True, False, False], [True, False, False, True, False]]
    assert out["shift_labels"].tolist() == out["labels"].tolist() == [5, 6, 7, 8]
    assert out["input_ids"].shape == (2, 5)


@pytest.fixture(scope="module")
def features(tok, demo_dir):
    rows = read_jsonl(demo_dir / "train.jsonl")[:6]
    ds, _ = build_train_dataset(rows, tok, combine=False, max_input_length=256, max_output_length=64)
    return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope="module")
def lora_model(configs_dir):
    from transformers import set_seed

    from gluekit.lora import apply_peft
    from gluekit.models import load_model

    set_seed(0)
    cfg = load_config(configs_dir / "tiny.yaml")
    net, _ = apply_peft(load_model(None), cfg.peft_config_object(), verbose=False)
    with torch.no_grad():  # non-zero lora_B, so adapter gradients depend on every part of the graph
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return net.train()


@pytest.fixture(scope="module")
def configs_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "configs"


def _loss_and_grads(net, batch):
    net.zero_grad(set_to_none=True)
    loss = net(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in net.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_same_loss_and_gradients_as_full_logits(lora_model, features, tok, layout):
    collate = PackCollator() if layout == "packed" else PadCollator(tok.pad_token_id)
    batch = collate(features)
    full, g_full = _loss_and_grads(lora_model, batch)
    kept, g_kept = _loss_and_grads(lora_model, label_only_inputs(batch))
    assert torch.isfinite(full) and abs(full.item() - kept.item()) <= 1e-5 * abs(full.item())
    for name in g_full:
        scale = g_full[name].abs().max().item()
        assert (g_full[name] - g_kept[name]).abs().max().item() <= 1e-5 * scale + 1e-9, name


def test_lm_head_sees_only_label_positions(lora_model, features, tok):
    batch = PadCollator(tok.pad_token_id)(features)
    n_targets = int((batch["labels"][:, 1:] != X).sum())
    rows = []
    hook = lora_model.get_output_embeddings().register_forward_hook(lambda m, i, o: rows.append(o.shape[:-1].numel()))
    try:
        with torch.no_grad():
            lora_model(**batch)
            lora_model(**label_only_inputs(batch))
    finally:
        hook.remove()
    assert rows == [batch["input_ids"].numel(), n_targets]
    assert n_targets < batch["input_ids"].numel() / 2  # prompts and padding are most of the batch


def test_which_models_support_it(lora_model):
    assert supports_label_only_logits(lora_model)  # PEFT-wrapped native GLM
    assert supports_label_only_logits(lora_model.get_base_model())

    class Wrapped(torch.nn.Module):  # DDP keeps the model in .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert supports_label_only_logits(Wrapped(lora_model))

    class RemoteCode(torch.nn.Module):  # e.g. THUDM/glm-4-9b-chat's own ChatGLMForConditionalGeneration
        def forward(self, input_ids, labels=None, return_last_logit=False):
            return None

    assert not supports_label_only_logits(RemoteCode())


def test_trainer_loss_uses_it_and_matches_the_model_loss(lora_model, features, tok, tmp_path, configs_dir):
    cfg = load_config(configs_dir / "tiny.yaml", [f"training_args.output_dir={tmp_path}", "training_args.eval_strategy=no"])
    data = PreparedData(train=features, eval_rows=[], test_rows=[], report=None)
    trainer = build_trainer(cfg, lora_model, tok, data, print_logs=False)
    assert trainer.label_only_logits is True
    batch = PadCollator(tok.pad_token_id)(features)
    seen = []
    hook = lora_model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(o.shape[:-1].numel()))
    try:
        with torch.no_grad():
            loss = trainer.compute_loss(lora_model, dict(batch))
            reference = lora_model(**batch).loss
    finally:
        hook.remove()
    assert seen[0] == int((batch["labels"][:, 1:] != X).sum())
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)


def test_gradient_accumulation_divisor_is_kept(lora_model, features, tok, tmp_path, configs_dir):
    # With gradient accumulation the Trainer passes num_items_in_batch (label tokens of all micro-batches):
    # the loss is a sum over this batch's targets divided by that count, as the model's own loss does.
    cfg = load_config(configs_dir / "tiny.yaml", [f"training_args.output_dir={tmp_path}", "training_args.eval_strategy=no",
                                                  "training_args.gradient_accumulation_steps=2"])
    trainer = build_trainer(cfg, lora_model, tok, PreparedData(train=features, report=None), print_logs=False)
    batch = PadCollator(tok.pad_token_id)(features)
    n = torch.tensor(3 * int((batch["labels"][:, 1:] != X).sum()))  # as if two more micro-batches followed
    with torch.no_grad():
        loss = trainer.compute_loss(lora_model, dict(batch), num_items_in_batch=n)
        full = lora_model(**batch, num_items_in_batch=n).loss
        mean = lora_model(**batch).loss
    assert trainer.model_accepts_loss_kwargs
    assert loss.item() == pytest.approx(full.item(), rel=1e-5)
    assert loss.item() == pytest.approx(mean.item() / 3, rel=1e-5)  # the divisor really is the given count
