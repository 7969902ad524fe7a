"""gluekit.viz.tokens (the coloured token/label view) and gluekit.viz.lengths (length histograms, cut counts)."""
import re

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import gluekit  # noqa: E402
from gluekit.tokens import IGNORE_INDEX  # noqa: E402
from gluekit.viz import lengths as vl  # noqa: E402
from gluekit.viz.tokens import ROLE_COLOURS, TARGET_BORDER, token_label_html, token_roles  # noqa: E402

CONV = [
    {"role": "system", "content": "你是一个旅游助手。"},
    {"role": "user", "content": "成都属于哪个省?"},
    {"role": "assistant", "content": "成都属于四川省。"},
    {"role": "user", "content": "那里有什么好吃的?"},
    {"role": "assistant", "content": "成都的特色美食是担担面。"},
]


@pytest.fixture(scope="module")
def rows(demo_dir):
    return gluekit.read_jsonl(demo_dir / "train.jsonl")


@pytest.fixture(scope="module")
def demo_lengths(tok, rows):
    return vl.measure_lengths(rows, tok, combine=False)


@pytest.fixture(scope="module")
def full_eval_rows(tok, rows):
    return gluekit.build_eval_rows(rows, tok, False, 10**6, 10**6)


def test_token_roles_follow_the_last_role_token(tok):
    enc = gluekit.encode_conversation(CONV, tok, combine=True)
    roles = token_roles(enc["input_ids"], tok)
    pieces = tok.convert_ids_to_tokens(enc["input_ids"])
    assert roles[:2] == ["prefix", "prefix"] and pieces[:2] == ["[gMASK]", "<sop>"]
    assert roles[pieces.index("<|system|>")] == "system"
    assert roles[pieces.index("<|assistant|>") + 1] == "assistant"
    assert roles[-1] == "user"  # the appended stop token opens a user turn


@pytest.mark.parametrize("combine", [True, False])
def test_html_marks_exactly_the_targets(tok, combine):
    enc = gluekit.encode_conversation(CONV, tok, combine=combine)
    html = token_label_html(tok, {f"combine: {combine}": enc}).data
    n_targets = sum(t != IGNORE_INDEX for t in enc["labels"])
    chips = re.findall(r'<span title="id (\d+), label (-?\d+)" style="([^"]*)">', html)
    assert [int(i) for i, _, _ in chips] == enc["input_ids"]
    assert [int(lab) for _, lab, _ in chips] == enc["labels"]
    assert sum(f"border:2px solid {TARGET_BORDER}" in style for _, _, style in chips) == n_targets
    assert f"combine: {combine}</b>: {len(enc['input_ids'])} tokens, {n_targets} targets" in html


def test_html_shows_special_tokens_roles_and_newlines(tok):
    enc = gluekit.encode_conversation(CONV, tok, combine=False)
    html = token_label_html(tok, {"x": enc}).data
    assert "&lt;|assistant|&gt;" in html and "[gMASK]" in html and "<|user|>" not in html  # escaped
    assert html.count("background:#37474f") >= 1 + 2 + 6  # legend + [gMASK]<sop> + the role tokens
    for colour in ROLE_COLOURS.values():
        assert f"background:{colour}" in html
    assert "↵" in html and "<br>" in html and "\n" not in html


def test_html_has_one_block_per_sample(tok):
    enc = {c: gluekit.encode_conversation(CONV, tok, combine=c) for c in (True, False)}
    html = token_label_html(tok, {"combine: True": enc[True], "combine: False": enc[False]}).data
    assert html.count("<b>combine: ") == 2
    assert html.index("combine: True") < html.index("combine: False")


def test_measure_lengths_match_gluekits_builders(tok, rows, demo_lengths, full_eval_rows):
    lengths = demo_lengths
    assert len(lengths["train"]) == len(rows) and len(lengths["prompt"]) == len(full_eval_rows) == len(lengths["reply"])
    first = gluekit.encode_conversation(rows[0]["messages"], tok, False)
    assert lengths["train"][0] == len(first["input_ids"])
    assert lengths["prompt"][0] == len(full_eval_rows[0]["prompt_ids"]) - 1  # without the final <|assistant|>


@pytest.mark.parametrize("max_in,max_out", [(32, 8), (256, 64), (20, 40)])
def test_cut_counts_agree_with_gluekit(tok, rows, demo_lengths, full_eval_rows, max_in, max_out):
    counts = vl.cut_counts(demo_lengths, max_in, max_out)
    _, report = gluekit.build_train_dataset(rows, tok, False, max_in, max_out)
    cut = gluekit.build_eval_rows(rows, tok, False, max_in, max_out)
    full = full_eval_rows
    assert counts["train"] == report.truncated
    assert counts["prompt"] == sum(len(a["prompt_ids"]) < len(b["prompt_ids"]) for a, b in zip(cut, full))
    assert counts["reply"] == sum(len(a["reference_ids"]) < len(b["reference_ids"]) for a, b in zip(cut, full))


def test_cut_counts_by_hand():
    lengths = {"prompt": [5, 10, 11], "reply": [1, 2, 3], "train": [10, 13, 14]}
    assert vl.limits(10, 2) == {"prompt": 10, "reply": 2, "train": 13}
    assert vl.cut_counts(lengths, 10, 2) == {"prompt": 1, "reply": 1, "train": 1}


def test_length_histograms_draw_limits_and_counts():
    import matplotlib.pyplot as plt

    lengths = {"prompt": [5, 10, 11], "reply": [1, 2, 3], "train": [10, 13, 14]}
    fig = vl.length_histograms(lengths, 10, 2)
    try:
        axes = fig.get_axes()
        assert len(axes) == 3
        titles = [ax.get_title() for ax in axes]
        assert titles[0] == "eval prompt: 1 of 3 cut\nlimit (red): max_input_length = 10"
        assert titles[1] == "eval reference reply: 1 of 3 cut\nlimit (red): max_output_length = 2"
        assert titles[2] == "training sequence: 1 of 3 cut\nlimit (red): in + out + 1 = 13"
        for ax, limit in zip(axes, (10, 2, 13)):
            line = ax.get_lines()[0]
            assert list(line.get_xdata()) == [limit + 0.5, limit + 0.5]
            heights = [p.get_height() for p in ax.patches]
            assert sum(heights) == 3  # every sample falls in a bin
            right_of_line = sum(p.get_height() for p in ax.patches if p.get_x() >= limit + 0.5)
            assert right_of_line == 1  # exactly the cut sample lies right of the line
        assert [ax.get_xlabel() for ax in axes] == ["tokens"] * 3 and axes[0].get_ylabel() == "samples"
    finally:
        plt.close(fig)


def test_limits_slider_redraws_on_change():
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    lengths = {"prompt": [5, 10, 11], "reply": [1, 2, 3], "train": [10, 13, 14]}
    box = vl.limits_slider(lengths, 10, 2)
    s_in, s_out, out = box.children
    assert isinstance(s_in, widgets.IntSlider) and s_in.description == "max_input_length" and s_in.value == 10
    assert s_out.description == "max_output_length" and not s_in.continuous_update
    assert isinstance(out, widgets.Output)
    s_in.value = 11  # triggers a redraw without error
    plt.close("all")
