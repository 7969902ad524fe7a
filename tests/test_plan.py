import pytest

from gluekit import load_config
from gluekit.plan import learning_rates, make_plan


def test_lora_yaml_plan_on_600_samples(configs):
    args = load_config(f"{configs}/lora.yaml").training_arguments()
    p = make_plan(args, 600)
    assert p.steps_per_epoch == 600 and p.max_steps == 3000 and p.epochs == 5.0
    assert p.checkpoints == [f"checkpoint-{s}" for s in (500, 1000, 1500, 2000, 2500, 3000)]
    assert p.eval_steps == [500, 1000, 1500, 2000, 2500, 3000]
    assert p.log_steps == list(range(10, 3001, 10))
    # linear decay from 5e-4 to 0, no warm-up: step k uses 5e-4 * (1 - (k - 1) / 3000)
    assert p.lr_at(1) == pytest.approx(5e-4)
    assert p.lr_at(501) == pytest.approx(5e-4 * (1 - 500 / 3000))
    assert p.lr_at(1000) == pytest.approx(5e-4 * (1 - 999 / 3000))
    assert p.lr_at(3000) == pytest.approx(5e-4 / 3000)


def test_devices_and_accumulation_change_steps_per_epoch(configs):
    args = load_config(f"{configs}/lora.yaml", ["training_args.per_device_train_batch_size=4"]).training_arguments()
    assert make_plan(args, 600, num_devices=2).steps_per_epoch == 75
    assert make_plan(args, 601, num_devices=2).steps_per_epoch == 76
    args = load_config(f"{configs}/lora.yaml", ["training_args.gradient_accumulation_steps=4"]).training_arguments()
    p = make_plan(args, 600)
    assert p.steps_per_epoch == 150 and p.global_batch_size == 4


def test_warmup_and_cosine_come_from_the_trainer_scheduler(configs):
    args = load_config(f"{configs}/lora.yaml", ["training_args.max_steps=100", "training_args.warmup_steps=10",
                                                 "training_args.lr_scheduler_type=cosine"]).training_arguments()
    lrs = learning_rates(args, 100)
    assert lrs[0] == 0.0 and lrs[10] == pytest.approx(5e-4) and lrs[5] == pytest.approx(2.5e-4)
    assert lrs[55] == pytest.approx(2.5e-4, rel=1e-6)


def test_epoch_strategies(configs):
    args = load_config(f"{configs}/lora.yaml", ["training_args.max_steps=-1", "training_args.num_train_epochs=2",
                                                 "training_args.save_strategy=epoch", "training_args.eval_strategy=epoch"]).training_arguments()
    p = make_plan(args, 50)
    assert p.max_steps == 100 and p.save_steps == [50, 100] and p.eval_steps == [50, 100]
