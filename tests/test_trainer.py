"""gluekit.trainer: the collator, the Trainer subclass and callbacks (at module level), the arguments."""
import copy

import pytest
import torch

from gluekit import load_config
from gluekit.data import build_train_dataset, read_jsonl
from gluekit.tokens import IGNORE_INDEX
from gluekit.errors import TrainingError
from gluekit.packing import PackCollator
from gluekit.train import PreparedData
from gluekit.trainer import (
    GenerationEvalTrainer, LogPrinter, NanGuard, PadCollator, build_trainer, nan_message, train_collator,
    trainer_arguments,
)


@pytest.fixture(scope="module")
def model():
    from gluekit.models import load_model

    return load_model(None)


@pytest.fixture(scope="module")
def features(tok, demo_dir, configs_dir):
    cfg = load_config(configs_dir / "tiny.yaml")
    rows = read_jsonl(demo_dir / "train.jsonl")[:16]
    ds, _ = build_train_dataset(rows, tok, cfg.combine, cfg.max_input_length, cfg.max_output_length)
    return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope="module")
def configs_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "configs"


# ---------------------------------------------------------------- batches


def test_pad_collator_pads_right():
    batch = PadCollator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [5], "labels": [5]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert PadCollator(0, pad_to_multiple_of=8)([{"input_ids": [1], "labels": [1]}])["input_ids"].shape[1] == 8


@pytest.mark.parametrize("multiple", [None, 8])
def test_pad_collator_equals_transformers_collator_padding_right(tok, features, multiple):
    """The same tensors as DataCollatorForSeq2Seq given a right-padding copy of the tokenizer (see
    PadCollator's docstring for why gluekit does not use it); with the tokenizer as it is, they differ."""
    from transformers import DataCollatorForSeq2Seq

    right = copy.deepcopy(tok)
    right.padding_side = "right"
    theirs = DataCollatorForSeq2Seq(right, label_pad_token_id=IGNORE_INDEX, pad_to_multiple_of=multiple, return_tensors="pt")
    ours = PadCollator(tok.pad_token_id, pad_to_multiple_of=multiple)
    for batch in (features[:8], features[8:]):
        a, b = ours(batch), theirs(copy.deepcopy(batch))
        assert len({len(f["input_ids"]) for f in batch}) > 1  # rows of different lengths: real padding
        assert set(a) == set(b) == {"input_ids", "labels", "attention_mask"}
        for key in a:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
        if multiple:
            assert a["input_ids"].shape[1] % multiple == 0
    assert tok.padding_side == "left"  # GLM-4's tokenizer pads for generation
    left = DataCollatorForSeq2Seq(tok, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")(copy.deepcopy(features[:8]))
    assert not torch.equal(left["input_ids"], ours(features[:8])["input_ids"])


def test_train_collator_follows_packing(configs, model, tok):
    assert isinstance(train_collator(load_config(f"{configs}/tiny.yaml"), model, tok), PadCollator)
    packed = load_config(f"{configs}/tiny.yaml", ["packing=true"])
    assert isinstance(train_collator(packed, model, tok), PackCollator)
    model.config._attn_implementation = "my_kernel"
    try:
        with pytest.raises(TrainingError, match="`packing`: packing needs one of the attention implementations"):
            train_collator(packed, model, tok)
    finally:
        model.config._attn_implementation = "sdpa"


# ---------------------------------------------------------------- messages


def test_nan_message_names_the_step_the_causes_and_where_to_restart(tmp_path):
    msg = nan_message(float("nan"), 5, 2e-3, 0, tmp_path)
    assert msg == ("training loss became nan at step 5; training stopped before the optimizer applied it. Likely causes: "
                   "this batch has no label tokens (every reply cut away: check the length limits); a learning rate too "
                   "high (0.002 now; LoRA usually trains at 1e-4 to 1e-3); fp16 on GLM-4 (use bf16: true, or neither on CPU). "
                   "No checkpoint was saved before it.")
    from checkpoint_files import write_checkpoint  # tests/checkpoint_files.py: a complete checkpoint, tiny tensors

    write_checkpoint(tmp_path, 4)
    msg = nan_message("nan or inf", 6, 1e6, None, tmp_path, what="the gradients")
    assert msg.startswith("the gradients became nan or inf at step 6;")
    assert "; a batch with no label tokens. The last complete checkpoint is checkpoint-4: fix the cause, then resume" in msg


def test_log_printer_prints_one_rounded_line(capsys):
    from transformers import TrainerState

    state = TrainerState(global_step=12)
    LogPrinter().on_log(None, state, None, logs={"loss": 1.234567, "grad_norm": 0.5, "learning_rate": 2.5e-4,
                                                 "epoch": 0.3, "train_runtime": 9.1, "eval_samples": 67})
    assert capsys.readouterr().out == "step   12 | loss 1.23 | grad_norm 0.5 | learning_rate 0.00025 | eval_samples 67\n"


# ---------------------------------------------------------------- the Trainer and its arguments


def test_classes_live_at_module_level_and_can_be_subclassed(configs, model, tok, tmp_path):
    from transformers import Seq2SeqTrainer, TrainerCallback

    assert issubclass(GenerationEvalTrainer, Seq2SeqTrainer)
    assert issubclass(NanGuard, TrainerCallback) and issubclass(LogPrinter, TrainerCallback)
    for cls in (GenerationEvalTrainer, NanGuard, LogPrinter, PadCollator):
        assert cls.__module__ == "gluekit.trainer" and "<locals>" not in cls.__qualname__

    class Quiet(LogPrinter):  # a user's own printer: subclassing works, isinstance finds both
        pass

    cfg = load_config(f"{configs}/tiny.yaml", [f"training_args.output_dir={tmp_path}", "training_args.eval_strategy=no"])
    trainer = build_trainer(cfg, model, tok, PreparedData(train=[], report=None), print_logs=True, callbacks=[Quiet])
    kinds = [type(cb) for cb in trainer.callback_handler.callbacks]
    assert isinstance(trainer, GenerationEvalTrainer)
    assert kinds.index(NanGuard) < kinds.index(LogPrinter) < kinds.index(Quiet) == len(kinds) - 1  # the caller's last
    from transformers.trainer_callback import PrinterCallback

    assert PrinterCallback not in kinds  # LogPrinter's short lines replace the Trainer's raw dicts


def test_trainer_arguments_read_the_trainers_own_defaults(configs, model, tmp_path):
    from transformers import Seq2SeqTrainingArguments

    cfg = load_config(f"{configs}/lora.yaml", [f"training_args.output_dir={tmp_path}"])
    assert "seed" not in cfg.training_args  # lora.yaml leaves the seed to the Trainer ...
    args = trainer_arguments(cfg, model)
    assert args.seed == Seq2SeqTrainingArguments(output_dir=str(tmp_path)).seed == 42  # ... whose default the run reads
    assert args.output_dir == str(tmp_path)
    assert args.dataloader_pin_memory is torch.cuda.is_available()  # pinning needs a GPU
    assert args.generation_config.eos_token_id == model.generation_config.eos_token_id  # the model's stop tokens kept
    assert args.generation_config.max_new_tokens == 512  # lora.yaml's, laid over the model's
    tiny = load_config(f"{configs}/tiny.yaml", [f"training_args.output_dir={tmp_path}", "training_args.seed=7",
                                                "training_args.dataloader_pin_memory=true"])
    args = trainer_arguments(tiny)
    assert args.seed == 7 and args.dataloader_pin_memory is True  # the config's own choices are kept
