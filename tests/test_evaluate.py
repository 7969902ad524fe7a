"""gluekit.evaluate: the batch plan, the prompt layout, greedy replies and the scored predictions file."""
import json

import pytest

from gluekit.data import build_eval_rows, read_jsonl
from gluekit.evaluate import MIN_SHARED_PREFIX, evaluate_rows, generate_replies, pad_rows, plan_batches, shared_prefix

DEV_LENGTHS = [11] * 7 + [12, 13, 14, 20, 24, 30, 33, 42] + [150] * 3 + [151] * 6 + [188] * 3 + [189] * 6


def test_plan_batches_on_dev_lengths():
    batches = plan_batches(DEV_LENGTHS, 16, 32)
    assert sorted(i for b in batches for i in b) == list(range(len(DEV_LENGTHS)))
    budget = 16 * (189 + 32)  # tokens: 16 rows of the longest prompt plus the new tokens
    for b in batches:
        widths = [DEV_LENGTHS[i] for i in b]
        assert widths == sorted(widths, reverse=True)  # the widest row first (it sets the padding)
        assert len(b) * (widths[0] + 32) <= budget
    # long tool prompts never share a batch with short questions; short ones get many rows
    assert [len(b) for b in batches] == [9, 9, 15]
    assert all(max(DEV_LENGTHS[i] for i in b) < 50 or min(DEV_LENGTHS[i] for i in b) >= 150 for b in batches)


def test_plan_batches_keeps_rows_when_all_equal():
    assert plan_batches([5] * 10, 4, 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]  # even sizes, input order kept
    assert plan_batches([], 4, 3) == []
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([3], 0, 3)


def test_rows_laid_out_prefix_padding_rest():
    ids, mask = pad_rows([[1, 2, 3, 4], [1, 2, 5]], 4, 2, 0)
    assert ids.tolist() == [[1, 2, 3, 4], [1, 2, 0, 5]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 1]]
    ids, mask = pad_rows([[1, 2, 3], [7]], 3, 0, 0)  # no shared prefix: plain left padding
    assert ids.tolist() == [[1, 2, 3], [0, 0, 7]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert shared_prefix([[9] * 20 + [1], [9] * 20 + [2, 3]]) == 20
    assert shared_prefix([[9] * 20, [9] * 30]) == 19  # each row keeps one token of its own
    assert shared_prefix([[9] * 10 + [1], [9] * 10 + [2]]) == 0  # under MIN_SHARED_PREFIX
    assert shared_prefix([[9] * 40]) == 0  # one row: nothing to share


# ---------------------------------------------------------------- on the tiny GLM


@pytest.fixture(scope="module")
def model():
    from gluekit.models import load_model

    return load_model().eval()


@pytest.fixture(scope="module")
def rows(tok, demo_dir):
    """Dev rows with long (tool list) and short prompts, so batches carry padding and a shared prefix."""
    ev = build_eval_rows(read_jsonl(demo_dir / "dev.jsonl"), tok, True, 512, 512)
    ev = sorted(ev, key=lambda r: len(r["prompt_ids"]))
    return ev[:5] + ev[-4:]


def test_replies_do_not_depend_on_batching(model, tok, rows):
    prompts = [r["prompt_ids"] for r in rows]
    assert len({len(p) for p in prompts}) > 3 and shared_prefix(prompts[-4:]) >= MIN_SHARED_PREFIX
    one_by_one = generate_replies(model, tok, prompts, batch_size=1, max_new_tokens=8)
    batched = generate_replies(model, tok, prompts, batch_size=16, max_new_tokens=8)
    assert batched == one_by_one and all(isinstance(r, str) and r for r in batched)
    backwards = generate_replies(model, tok, prompts[::-1], batch_size=16, max_new_tokens=8)
    assert backwards == batched[::-1]  # returned in the prompts' order, whatever the batch plan
    assert model.training is False


def test_evaluate_rows_scores_and_writes_one_line_per_row(model, tok, rows, tmp_path):
    from transformers import GenerationConfig

    out = tmp_path / "eval_predictions" / "eval-step-5.jsonl"
    metrics, preds = evaluate_rows(model, tok, rows, GenerationConfig(max_new_tokens=8), batch_size=4, predictions_file=out)
    assert set(metrics) == {"rouge-1", "rouge-2", "rouge-l", "bleu-4", "exact_match"}
    assert preds == generate_replies(model, tok, [r["prompt_ids"] for r in rows], batch_size=4, max_new_tokens=8)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [set(d) for d in lines] == [{"line", "turn", "prompt", "prediction", "reference"}] * len(rows)
    assert [d["prediction"] for d in lines] == preds and [d["reference"] for d in lines] == [r["reference"] for r in rows]
    assert lines[0]["prompt"] == tok.decode(rows[0]["prompt_ids"], skip_special_tokens=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["eval-step-5.jsonl"]  # written whole, no .tmp left
