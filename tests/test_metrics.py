import pytest

from gluekit.metrics import compute_metrics, score


def test_identical_text_scores_100():
    s = score("成都的特色美食是担担面。", "成都的特色美食是担担面。")
    assert s["rouge-1"] == pytest.approx(100) and s["rouge-l"] == pytest.approx(100)
    assert s["bleu-4"] == pytest.approx(100) and s["exact_match"] == 100


def test_empty_prediction_scores_zero_like_the_reference():
    assert score("", "成都的特色美食是担担面。") == {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0, "bleu-4": 0.0, "exact_match": 0.0}


def test_partial_overlap_is_between_and_bleu_uses_method3():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    import jieba

    pred, ref = "成都的特色美食是火锅。", "成都的特色美食是担担面。"
    s = score(pred, ref)
    assert 0 < s["rouge-1"] < 100 and s["exact_match"] == 0
    expect = sentence_bleu([list(jieba.cut(ref))], list(jieba.cut(pred)), smoothing_function=SmoothingFunction().method3)
    assert s["bleu-4"] == pytest.approx(100 * expect)


def test_mean_over_samples():
    m = compute_metrics(["好。", "不好"], ["好。", "好。"])
    assert m["exact_match"] == 50
    with pytest.raises(ValueError, match="differ in length"):
        compute_metrics(["a"], [])
