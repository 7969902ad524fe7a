"""GLM-4's evaluation metrics for Chinese text: ROUGE-1/2/L and BLEU-4 over jieba words.

As the reference: predictions and references are cut into words with jieba; ROUGE F1 comes from
rouge_chinese and BLEU-4 from nltk's ``sentence_bleu`` with ``SmoothingFunction().method3``; each
metric is averaged over samples. Unlike the reference, BLEU is reported x100 like ROUGE (the
reference left it on a 0..1 scale), and exact match is added.
"""
from __future__ import annotations

import logging

_jieba = None


def _cut(text: str) -> list[str]:
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict" lines go to stderr otherwise
        _jieba = jieba
    return [w for w in _jieba.cut(text) if w.strip()]


def score(prediction: str, reference: str) -> dict[str, float]:
    """Metrics for one pair, all on a 0..100 scale."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    hyp, ref = _cut(prediction), _cut(reference)
    out = {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    if hyp and ref:  # rouge_chinese raises on an empty side; the reference scores it 0
        s = Rouge().get_scores(" ".join(hyp), " ".join(ref))[0]
        out = {k: 100 * s[k]["f"] for k in out}
    out["bleu-4"] = 100 * sentence_bleu([ref], hyp, smoothing_function=SmoothingFunction().method3) if hyp and ref else 0.0
    out["exact_match"] = 100.0 * (prediction.strip() == reference.strip())
    return out


def compute_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean of :func:`score` over pairs (0..100)."""
    if len(predictions) != len(references):
        raise ValueError(f"predictions ({len(predictions)}) and references ({len(references)}) differ in length.")
    if not predictions:
        return {}
    rows = [score(p, r) for p, r in zip(predictions, references)]
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
