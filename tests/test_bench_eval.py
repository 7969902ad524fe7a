"""benchmarks/bench_eval.py in quick mode: gluekit's replies equal the reference path's, prompt by prompt.

No timings are checked here (the benchmark itself reports them); only that both paths generate
the same greedy replies (gluekit's batch plan itself is tested in tests/test_evaluate.py).
"""
import pytest


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


def test_shared_prefix_changes_no_reply(setup, monkeypatch):
    """The tool prompts share a long prefix, computed once; turning that off gives the same replies."""
    from gluekit import evaluate
    from gluekit.models import load_model

    bench_eval, cfg, tok, rows = setup
    long_rows = [r["prompt_ids"] for r in rows if len(r["prompt_ids"]) > 100]
    assert len(long_rows) >= 2 and evaluate.shared_prefix(long_rows) >= evaluate.MIN_SHARED_PREFIX
    model = load_model().eval()
    shared = bench_eval.gluekit_replies(model, tok, rows, cfg)
    monkeypatch.setattr(evaluate, "MIN_SHARED_PREFIX", 10**9)
    assert bench_eval.gluekit_replies(model, tok, rows, cfg) == shared
