"""The data-preparation benchmark's comparison: gluekit's samples are GLM-4's reference samples.

Runs the ``--quick`` sizes (500 conversations) and checks outputs only, never timings.
"""
import pytest

from benchmarks import bench_data_prep as bench
from gluekit import encoder
from gluekit.tokens import IGNORE_INDEX


@pytest.fixture(scope="module")
def convs():
    return bench.make_conversations(bench.N_QUICK)


@pytest.mark.parametrize("combine", [True, False])
def test_gluekit_matches_the_reference(tok, convs, combine):
    res = bench.check_outputs(convs, tok, combine)
    assert res["same"], res
    assert res["samples"] == bench.N_QUICK
    assert res["at_length_limit"] > 0  # the cut to max_input_length + max_output_length + 1 is compared too


@pytest.mark.parametrize("combine", [True, False])
def test_gluekit_matches_the_reference_without_repeated_messages(tok, convs, combine):
    unique = bench.unique_messages(convs[:200])
    assert len({m["content"] for c in unique for m in c if m["content"]}) == sum(
        1 for c in unique for m in c if m["content"])
    assert bench.check_outputs(unique, tok, combine)["same"]


def test_zero_label_samples_are_dropped_on_both_sides(tok, convs):
    res = bench.check_outputs(convs, tok, True)  # combine: True loses the last reply when it is cut
    assert res["zero_label_dropped"] > 0 and res["same"]


def test_conversations_are_multi_turn_and_use_every_role(convs):
    roles = {m["role"] for c in convs for m in c}
    assert roles == {"system", "user", "assistant", "observation"}
    assert sum(len(c) > 5 for c in convs) > len(convs) // 3
    assert bench.make_conversations(20) == bench.make_conversations(20)  # deterministic from the seed


def test_compare_notices_one_changed_label(tok, convs):
    ref = bench.reference(convs[:20], tok, False)
    glue = [(list(ids), list(labels)) for ids, labels in ref]
    ids, labels = glue[7]
    i = next(j for j, t in enumerate(labels) if t != IGNORE_INDEX)
    labels[i] = IGNORE_INDEX
    assert bench.compare(ref, ref)["same"]
    assert not bench.compare(ref, glue)["same"]


def _other_template(tok):
    """A copy of the tokenizer whose template marks the last message: messages no longer render alone."""
    import copy

    other = copy.deepcopy(tok)
    other.chat_template = tok.chat_template.replace(
        "{% endfor %}{% if add_generation_prompt %}", "{% if loop.last %}<eop>{% endif %}{% endfor %}{% if add_generation_prompt %}")
    assert other.chat_template != tok.chat_template
    return other


@pytest.mark.parametrize("combine", [True, False])
@pytest.mark.parametrize("path", ["template_not_separable", "analysis_unsure"])
def test_slow_paths_match_the_reference(tok, convs, monkeypatch, combine, path):
    """gluekit's exact fallbacks: whole-chat rendering, and joined messages checked on the text."""
    import copy

    if path == "template_not_separable":
        tok = _other_template(tok)
    else:
        tok = copy.deepcopy(tok)  # a tokenizer whose template facts are worked out afresh
        monkeypatch.setattr(encoder, "renders_messages_alone", lambda template: False)
    assert not encoder.Encoder(tok, combine).separable
    sample = convs[:100] + bench.unique_messages(convs[100:150])
    assert bench.check_outputs(sample, tok, combine)["same"]
