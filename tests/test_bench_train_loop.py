"""benchmarks/bench_train_loop.py in quick mode: gluekit's Trainer and the hand-written loop train alike.

Same seed, same batches (the Trainer's own dataloader), same optimizer and schedule: the loss of
every step must agree to 1e-4 relative. No timings are checked here.
"""
import math

import pytest

STEPS = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import torch

    from benchmarks import bench_train_loop as b
    from gluekit.models import load_tokenizer
    from gluekit.tiny import DEMO_DIR
    from gluekit.train import prepare_data

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = b._config(STEPS, str(tmp_path_factory.mktemp("loop")), logging_steps=1)
    tok = load_tokenizer()
    data = prepare_data(cfg, DEMO_DIR, tok)
    trainer = b._gluekit_trainer(cfg, tok, data)
    trainer.train()
    glue = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    yield b, cfg, trainer, glue
    torch.set_num_threads(threads)


def test_losses_equal_step_by_step(run):
    b, cfg, trainer, glue = run
    loop = b.hand_loop(b._fresh_model(cfg, trainer.args.seed), trainer.get_train_dataloader(), trainer.args, STEPS)
    assert len(glue) == len(loop) == STEPS
    assert all(math.isclose(x, y, rel_tol=b.LOSS_RTOL) for x, y in zip(glue, loop)), (glue, loop)
    assert glue[-1] < glue[0]  # it trains


def test_a_different_learning_rate_is_caught(run):
    """The check can fail: the loop with another learning rate drifts from step 2 on."""
    b, cfg, trainer, glue = run
    import copy

    args = copy.copy(trainer.args)  # a new TrainingArguments would reset accelerate's state
    args.learning_rate *= 3
    loop = b.hand_loop(b._fresh_model(cfg, trainer.args.seed), trainer.get_train_dataloader(), args, STEPS)
    assert math.isclose(glue[0], loop[0], rel_tol=b.LOSS_RTOL)
    assert not all(math.isclose(x, y, rel_tol=b.LOSS_RTOL) for x, y in zip(glue, loop))


def test_label_only_loop_trains_like_the_full_logits_loop(run):
    b, cfg, trainer, glue = run
    loop = b.hand_loop(b._fresh_model(cfg, trainer.args.seed), trainer.get_train_dataloader(), trainer.args, STEPS, label_only=True)
    assert all(math.isclose(x, y, rel_tol=b.LOSS_RTOL) for x, y in zip(glue, loop)), (glue, loop)
