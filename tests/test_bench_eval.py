"""benchmarks/bench_eval.py in quick mode: gluekit's replies equal the reference path's, prompt by prompt.

No timings are checked here (the benchmark itself reports them); only that both paths generate
the same greedy replies, and that gluekit's batch plan keeps its promises.
"""
import pytest

from gluekit.evaluate import plan_batches

DEV_LENGTHS = [11] * 7 + [12, 13, 14, 20, 24, 30, 33, 42] + [150] * 3 + [151] * 6 + [188] * 3 + [189] * 6


@pytest.fixture(scope="module")
def setup():
    import torch

    from benchmarks import bench_eval

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield bench_eval, *bench_eval.load_setup(quick=True)
    torch.set_num_threads(threads)


def _check_same(bench_eval, model, tok, rows, cfg, tmp_path):
    ref = bench_eval.ReferencePredictor(model, tok, rows, cfg, str(tmp_path))()
    glue = bench_eval.gluekit_replies(model, tok, rows, cfg)
    assert len(glue) == len(ref) == len(rows)
    assert [i for i, (a, b) in enumerate(zip(glue, ref)) if a != b] == []
    return glue


def test_untrained_replies_equal_reference(setup, tmp_path):
    from gluekit.models import load_model

    bench_eval, cfg, tok, rows = setup
    assert len({len(r["prompt_ids"]) for r in rows}) > 3  # long and short prompts: padding matters
    glue = _check_same(bench_eval, load_model().eval(), tok, rows, cfg, tmp_path)
    assert all(glue)


def test_fine_tuned_replies_equal_reference(setup, tmp_path):
    bench_eval, cfg, tok, rows = setup
    model = bench_eval.fine_tuned_model(30)
    _check_same(bench_eval, model, tok, rows, cfg, tmp_path)


def test_reference_padding_side_matters(setup, tmp_path):
    """The comparison can fail: right padding (wrong for generation) changes replies."""
    from gluekit.models import load_model

    bench_eval, cfg, tok, rows = setup
    model = load_model().eval()
    left = bench_eval.ReferencePredictor(model, tok, rows, cfg, str(tmp_path))()
    tok_right = tok.__class__.from_pretrained(tok.name_or_path)
    tok_right.padding_side = "right"
    right = bench_eval.ReferencePredictor(model, tok_right, rows, cfg, str(tmp_path))()
    assert left != right


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


def test_shared_prefix_changes_no_reply(setup, monkeypatch):
    """The tool prompts share a long prefix, computed once; turning that off gives the same replies."""
    from gluekit import evaluate
    from gluekit.models import load_model

    bench_eval, cfg, tok, rows = setup
    long_rows = [r["prompt_ids"] for r in rows if len(r["prompt_ids"]) > 100]
    assert len(long_rows) >= 2 and evaluate._shared_prefix(long_rows) >= evaluate.MIN_SHARED_PREFIX
    model = load_model().eval()
    shared = bench_eval.gluekit_replies(model, tok, rows, cfg)
    monkeypatch.setattr(evaluate, "MIN_SHARED_PREFIX", 10**9)
    assert bench_eval.gluekit_replies(model, tok, rows, cfg) == shared


def test_rows_laid_out_prefix_padding_rest():
    from gluekit.evaluate import _pad_rows, _shared_prefix

    ids, mask = _pad_rows([[1, 2, 3, 4], [1, 2, 5]], 4, 2, 0)
    assert ids.tolist() == [[1, 2, 3, 4], [1, 2, 0, 5]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 1]]
    ids, mask = _pad_rows([[1, 2, 3], [7]], 3, 0, 0)  # no shared prefix: plain left padding
    assert ids.tolist() == [[1, 2, 3], [0, 0, 7]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert _shared_prefix([[9] * 20 + [1], [9] * 20 + [2, 3]]) == 20
    assert _shared_prefix([[9] * 20, [9] * 30]) == 19  # each row keeps one token of its own
    assert _shared_prefix([[9] * 10 + [1], [9] * 10 + [2]]) == 0  # under MIN_SHARED_PREFIX
    assert _shared_prefix([[9] * 40]) == 0  # one row: nothing to share
