"""CPU end-to-end runs of the real recipe on the tiny GLM."""
import contextlib
import io
import json

import pytest

from gluekit import load_config
from gluekit.plan import make_plan
from gluekit.train import PadCollator, list_checkpoints, resolve_resume, train, training_log, TrainingError


def small(configs, out, *extra):
    return load_config(f"{configs}/tiny.yaml", [
        "training_args.max_steps=12", "training_args.logging_steps=1", "training_args.save_steps=5",
        "training_args.eval_steps=6", "training_args.log_level=warning", f"training_args.output_dir={out}", *extra])


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, demo_dir):
    import os

    configs = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")
    out = tmp_path_factory.mktemp("run") / "out"
    cfg = small(configs, out)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = train(cfg, demo_dir, print_logs=False)
    result.printed = printed.getvalue()
    return cfg, out, result


def test_print_logs_false_prints_no_log_records(short_run):
    _, _, result = short_run
    assert len(result.trainer.state.log_history) > 12  # 12 loss records and more were logged ...
    assert "'loss'" not in result.printed and "step " not in result.printed  # ... and none was printed


def test_checkpoints_logs_and_metrics_follow_the_plan(short_run):
    cfg, out, result = short_run
    plan = make_plan(cfg.training_arguments(), 600)
    assert [p.name for p in list_checkpoints(out)] == plan.checkpoints == ["checkpoint-5", "checkpoint-10", "checkpoint-12"]
    log = training_log(out)
    assert [e["step"] for e in log if "loss" in e] == plan.log_steps == list(range(1, 13))
    assert [e["learning_rate"] for e in log if "loss" in e] == pytest.approx(plan.learning_rates)
    evals = [e for e in log if "eval_rouge-1" in e]
    assert [e["step"] for e in evals] == plan.eval_steps == [6, 12]
    assert all(e["eval_samples"] == 67 for e in evals)  # the whole dev set, one sample per assistant turn
    assert not any("eval_loss" in e for e in log)
    assert set(result.test_metrics) >= {"test_rouge-1", "test_rouge-2", "test_rouge-l", "test_bleu-4", "test_exact_match"}


def test_adapter_and_checkpoint_files(short_run):
    _, out, result = short_run
    for folder in [result.adapter_dir] + list_checkpoints(out):
        assert (folder / "adapter_model.safetensors").is_file()
        assert not (folder / "adapter_model.bin").exists()  # weights in safetensors only
    ck = out / "checkpoint-12"
    for name in ("optimizer.pt", "scheduler.pt", "trainer_state.json", "adapter_config.json"):
        assert (ck / name).is_file(), name
    preds = (out / "eval_predictions" / "test-step-12.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(preds) == 67 and {"prompt", "prediction", "reference"} <= set(json.loads(preds[0]))
    summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    assert summary["resumed_from"] is None


def test_resume_continues_to_the_same_adapter(short_run, demo_dir, configs):
    from safetensors.torch import load_file

    cfg, out, _ = short_run
    # from checkpoint-5 into a copy, then compare the final adapter with the straight run's
    import shutil

    other = out.parent / "resumed"
    shutil.copytree(out / "checkpoint-5", other / "checkpoint-5")
    res = train(small(configs, other), demo_dir, resume=5, print_logs=False)
    assert res.resumed_from.name == "checkpoint-5"
    a = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(other / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    steps = [e["step"] for e in training_log(other) if "loss" in e]
    assert steps == list(range(1, 13))  # the history before the checkpoint travels with it


def test_resume_words(tmp_path):
    assert resolve_resume(tmp_path / "absent", "latest") is None
    assert resolve_resume(tmp_path / "absent", None) is None
    ck = tmp_path / "checkpoint-7"
    ck.mkdir()
    (ck / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-9").mkdir()  # no trainer_state.json: incomplete, never picked
    assert resolve_resume(tmp_path, "yes") == ck
    assert resolve_resume(tmp_path, "7") == ck
    with pytest.raises(TrainingError, match="checkpoint-9 is incomplete: no trainer_state.json"):
        resolve_resume(tmp_path, 9)
    with pytest.raises(TrainingError, match="checkpoint-11 does not exist or is incomplete"):
        resolve_resume(tmp_path, 11)
    with pytest.raises(TrainingError, match="already holds checkpoint-7"):
        resolve_resume(tmp_path, "no")
    assert resolve_resume(tmp_path, "no", overwrite=True) is None and not ck.exists()


def test_pad_collator_pads_right():
    batch = PadCollator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [5], "labels": [5]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert PadCollator(0, pad_to_multiple_of=8)([{"input_ids": [1], "labels": [1]}])["input_ids"].shape[1] == 8


def test_tiny_demo_learns_the_task(tmp_path, configs, demo_dir):
    """The acceptance bar: configs/tiny.yaml on the demo data, >= 90% exact answers on dev."""
    from gluekit.data import build_eval_rows, read_jsonl
    from gluekit.evaluate import evaluate_rows
    from gluekit.models import load_model, load_tokenizer

    cfg = load_config(f"{configs}/tiny.yaml", [f"training_args.output_dir={tmp_path}", "training_args.eval_strategy=no",
                                               "training_args.save_strategy=no", "training_args.log_level=warning"])
    tok = load_tokenizer()
    rows = build_eval_rows(read_jsonl(demo_dir / "dev.jsonl"), tok, cfg.combine, cfg.max_input_length, cfg.max_output_length)
    before, _ = evaluate_rows(load_model(), tok, rows, cfg.generation_config(), batch_size=16)
    assert before["exact_match"] == 0
    result = train(cfg, demo_dir, print_logs=False)
    assert result.test_metrics["test_exact_match"] >= 90
    log = training_log(tmp_path)
    losses = [e["loss"] for e in log if "loss" in e]
    assert losses[-1] < losses[0] / 10
