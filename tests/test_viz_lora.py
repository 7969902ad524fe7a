"""gluekit.viz.lora: counts come from PEFT (via lora_trainable_on), scaling from lora_scaling."""
import html

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from transformers import GlmConfig  # noqa: E402

import gluekit.viz.lora as vl  # noqa: E402
from gluekit.lora import format_count, lora_scaling  # noqa: E402
from gluekit.models import meta_model, remote_code_skeleton  # noqa: E402


@pytest.fixture(scope="module")
def small():
    """A 2-layer GLM on the meta device (fast to count), native and remote-code names."""
    c = GlmConfig(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=64, tie_word_embeddings=False,
                  pad_token_id=0, eos_token_id=1, bos_token_id=None)
    return {"native": vl.RankCounter(meta_model(c), ["q_proj", "k_proj", "v_proj"]),
            "fused": vl.RankCounter(remote_code_skeleton(c), ["query_key_value"])}


def test_counts_match_the_shapes(small):
    # per layer: r * (in + out) for each wrapped Linear; q 256->256, k/v 256->128, fused 256->512
    assert small["native"](4) == 2 * 4 * ((256 + 256) + 2 * (256 + 128))
    assert small["fused"](4) == 2 * 4 * (256 + 512)
    assert small["native"].total == small["fused"].total


def test_counter_caches(small, monkeypatch):
    calls = []
    real = vl.lora_trainable_on
    monkeypatch.setattr(vl, "lora_trainable_on", lambda m, c: calls.append(c.r) or real(m, c))
    counter = vl.RankCounter(small["native"].model, ["q_proj"])
    assert counter(2) == counter(2) == 2 * 2 * (256 + 256)
    assert calls == [2]


def test_glm4_9b_numbers():
    counters = {"native": vl.RankCounter(meta_model(), ["q_proj", "k_proj", "v_proj"]),
                "fused": vl.RankCounter(remote_code_skeleton(), ["query_key_value"])}
    numbers = vl.lora_numbers(8, 32, counters)
    assert numbers["scaling"] == 4.0
    native, fused = numbers["rows"]
    assert (native["trainable"], native["total"]) == (5_406_720, 9_405_358_080)
    assert (fused["trainable"], fused["total"]) == (2_785_280, 9_402_736_640)
    assert fused["percent"] == pytest.approx(0.0296, abs=5e-5)
    text = vl.format_lora_numbers(numbers)
    assert text.splitlines() == [
        "r = 8, lora_alpha = 32 -> scaling lora_alpha / r = 4",
        "native: trainable params: 5,406,720 || all params: 9,405,358,080 || trainable%: 0.0575",
        "fused: trainable params: 2,785,280 || all params: 9,402,736,640 || trainable%: 0.0296",
    ]


def test_plot_has_one_line_per_counter_with_the_counts(small):
    rs = [1, 2, 4, 8]
    fig = vl.plot_trainable_vs_r(rs, small)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == len(rs)]
    assert len(lines) == 2
    for line, count in zip(lines, small.values()):
        assert list(line.get_xdata()) == rs
        assert list(line.get_ydata()) == pytest.approx([count(r) / 1e6 for r in rs])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"native: {small['native'](8):,} at r=8", f"fused: {small['fused'](8):,} at r=8"]
    plt.close(fig)
    fig = vl.plot_trainable_vs_r(rs, small, highlight=None, log=True)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    plt.close(fig)


def test_explorer_follows_the_sliders(small):
    box = vl.lora_explorer(small, r=8, lora_alpha=32)
    r_slider, a_slider, out = box.children
    assert html.unescape(out.value) == f"<pre>{vl.format_lora_numbers(vl.lora_numbers(8, 32, small))}</pre>"
    r_slider.value, a_slider.value = 16, 64
    text = html.unescape(out.value)
    assert f"scaling lora_alpha / r = {lora_scaling(16, 64):g}" in text
    assert format_count(small["fused"](16), small["fused"].total + small["fused"](16)) in text
