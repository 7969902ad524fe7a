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


def test_evaluation_plan_times_generation_and_says_when_it_may_stop(configs):
    from gluekit.plan import DEFAULT_SECONDS_PER_REPLY, plan_evaluation

    cfg = load_config(f"{configs}/tiny.yaml", {"eval_samples": 20, "training_args.eval_steps": 100, "training_args.save_steps": 100,
                                               "training_args.load_best_model_at_end": True,
                                               "training_args.metric_for_best_model": "rouge-l",
                                               "early_stopping": {"patience": 2, "threshold": 0.5}})
    p = make_plan(cfg.training_arguments(), 600, num_devices=2)
    e = plan_evaluation(cfg, p, val_samples=67, test_samples=67)
    assert e.generates and e.per_evaluation == 20 and e.eval_steps == [100, 200, 300, 400, 500, 600]
    assert e.seconds_per_sample == DEFAULT_SECONDS_PER_REPLY == 4.0
    assert e.seconds(20) == 4.0 * 10 and e.seconds(67) == 4.0 * 34  # each of 2 devices generates its share
    assert e.earliest_stop == 300 and e.greater_is_better and e.metric == "eval_rouge-l"
    lines = e.summary().splitlines()
    assert lines[0] == ("evaluation: generation (ROUGE/BLEU of generated replies), 67 replies in val_file; 6 evaluation(s) "
                        "during training score a fixed random 20 of them (eval_samples); after training the test_file's 67 once, whole")
    assert lines[1] == ("  generation time: 120 + 67 replies at 4 s per reply (default: GLM-4-9B in GLM-4 issue 488) over 2 "
                        "device(s): about 4.0 min during training + 2.3 min at the end (every reply at every evaluation: 15.9 min)")
    assert lines[2] == ("early stopping: after 2 evaluation(s) in a row without eval_rouge-l improving by more than 0.5 (higher "
                        "is better); the earliest stop is step 300 (evaluation 3 of 6), or any evaluation after it; "
                        "load_best_model_at_end: the best evaluation's checkpoint is kept and loaded at the end, and becomes the adapter")
    given = plan_evaluation(cfg, p, 67, 67, seconds_per_sample=0.5)
    assert given.seconds(67) == 17.0 and "at 0.5 s per reply (given)" in given.summary()
    loss = load_config(f"{configs}/tiny.yaml", {"training_args.predict_with_generate": False,
                                                "early_stopping": {"patience": 5}, "training_args.metric_for_best_model": "loss"})
    e = plan_evaluation(loss, make_plan(loss.training_arguments(), 600), 40, 40)
    assert e.seconds_per_sample is None and e.earliest_stop is None and e.greater_is_better is False
    assert e.summary().splitlines()[1:] == [
        "  cost: one forward pass per sample (80 during training, 40 at the end), no generation",
        "early stopping: after 5 evaluation(s) in a row without eval_loss improving by more than 0 (lower is better); it cannot "
        "stop early: only 2 evaluation(s); the adapter is the last step's (load_best_model_at_end is off)"]
