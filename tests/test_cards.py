"""gluekit.cards: presets, the present card (injected: CPU tests pretend to be a T4 / V100 / RTX 3090 / A100),
does-it-fit with the smallest change, and the card lines of `gluekit check` / `gluekit plan`."""
import json
import os

import pytest

from gluekit import cards
from gluekit.cli import main
from gluekit.config import load_config

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "gluekit", "configs")
LORA = os.path.join(CONFIGS, "lora.yaml")
TINY = os.path.join(CONFIGS, "tiny.yaml")
GiB = 1024 ** 3


@pytest.fixture(scope="module")
def glm9b():
    from gluekit.memory import model_config_for

    return model_config_for("glm-4-9b")


@pytest.fixture(scope="module")
def lora_fit24(glm9b):
    return cards.fit(load_config(LORA), cards.parse_card("24GB"), glm9b)


def pretend(monkeypatch, name):
    monkeypatch.setattr(cards, "PROBE", lambda: cards.PRESETS[name])


def test_parse_and_presets(monkeypatch):
    assert cards.parse_card("24GB").memory == 24 * GiB and cards.parse_card("16").memory == 16 * GiB
    assert cards.parse_card("rtx3090") == cards.PRESETS["RTX3090"]
    assert [cards.PRESETS[n].bf16 for n in ("T4", "V100", "RTX3090", "A100")] == [False, False, True, True]
    monkeypatch.setattr(cards, "PROBE", lambda: None)
    assert cards.parse_card(None) is None and cards.parse_card("present") is None
    pretend(monkeypatch, "T4")
    assert cards.parse_card("present").name == "Tesla T4"
    with pytest.raises(ValueError, match="--card: expected a memory like 24GB"):
        cards.parse_card("big")


def test_fit_uses_the_estimator(lora_fit24, glm9b):
    from gluekit.memory import count_trainables, peak_memory

    r = lora_fit24
    cfg = load_config(LORA)
    t = count_trainables(glm9b, cfg.peft_config_object())
    assert r.as_written.peak == peak_memory(glm9b, t, batch=1, seq_len=1025, dtype="bfloat16").total
    assert not r.as_written.fits  # 26.73 GiB > 0.9 x 24 GiB
    best = r.smallest
    assert best.change == "gradient checkpointing" and best.overrides == ["training_args.gradient_checkpointing=true"]
    assert best.peak == peak_memory(glm9b, t, batch=1, seq_len=1025, dtype="bfloat16", gradient_checkpointing=True).total
    four = next(o for o in r.options if o.change == "4-bit base")
    assert round(four.peak / GiB, 2) == 21.58  # nf4 + double quant, fp32 rest and hidden stream after k-bit prep
    assert "does not fit as written; smallest change that fits: gradient checkpointing: -o training_args.gradient_checkpointing=true" in r.summary()


def test_small_card_needs_4bit(glm9b):
    r = cards.fit(load_config(LORA), cards.parse_card("12GB"), glm9b)
    assert r.smallest.change == "gradient checkpointing + 4-bit base + max lengths halved (256 + 256)"
    assert round(r.smallest.peak / GiB, 2) == 9.82 and r.smallest.peak <= 12 * GiB * cards.USABLE
    assert all(not o.fits for o in r.options[: r.options.index(r.smallest)])  # 11.00 GiB with checkpointing + 4-bit


def test_no_bf16_card_messages(monkeypatch):
    text = "\n".join(cards.precision_lines(cards.PRESETS["V100"]))
    assert "this card has no bf16 (compute capability 7.0 < 8.0): fp16 gives NaN losses with GLM-4." in text
    assert cards.precision_lines(cards.PRESETS["A100"]) == []
    q = {"load_in_4bit": True, "bnb_4bit_compute_dtype": "bfloat16"}
    assert cards.compute_dtype_problem(cards.PRESETS["T4"], q) == (
        "`quantization.bnb_4bit_compute_dtype`: Tesla T4 has no bf16 (compute capability 7.5 < 8.0), got 'bfloat16'. "
        "Use float32 (fp16 gives NaN losses with GLM-4).")
    assert cards.compute_dtype_problem(cards.PRESETS["A100"], q) is None


def test_plan_card_cli(capsys, monkeypatch, demo_dir):
    monkeypatch.setattr(cards, "PROBE", lambda: None)
    assert main(["plan", TINY, "--data-dir", str(demo_dir)]) == 0
    assert "card:" not in capsys.readouterr().out  # no card, no --card: nothing about cards
    pretend(monkeypatch, "T4")
    assert main(["plan", TINY, "--data-dir", str(demo_dir), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["card"]["card"]["name"] == "Tesla T4" and d["card"]["fits_as_written"] is True
    assert d["card"]["options"][0]["peak"] == d["memory"]["bytes"]["checkpointing_off"]["total"]
    assert main(["plan", TINY, "--data-dir", str(demo_dir), "--card", "huge"]) == 1
    assert "--card: expected a memory like 24GB" in capsys.readouterr().err


def test_check_reports_the_card(capsys, monkeypatch, demo_dir):
    pretend(monkeypatch, "V100")
    assert main(["check", TINY, "--data-dir", str(demo_dir)]) == 0
    out = capsys.readouterr().out
    assert "card: Tesla V100 (16 GB), 16.0 GiB, compute capability 7.0, bf16 no" in out
    assert "fits as written." in out and "fp16 gives NaN losses with GLM-4" in out
    q = ["-o", "quantization.load_in_4bit=true", "-o", "quantization.bnb_4bit_compute_dtype=bfloat16"]
    monkeypatch.setattr("gluekit.quantization.available", lambda: True)
    assert main(["check", TINY, "--data-dir", str(demo_dir), *q]) == 1
    assert "`quantization.bnb_4bit_compute_dtype`: Tesla V100 (16 GB) has no bf16" in capsys.readouterr().out


def test_plan_json_carries_the_4bit_estimate(capsys, monkeypatch, demo_dir):
    monkeypatch.setattr(cards, "PROBE", lambda: None)
    assert main(["plan", TINY, "--data-dir", str(demo_dir), "--json", "-o", "quantization.load_in_4bit=true"]) == 0
    q = json.loads(capsys.readouterr().out)["memory"]
    assert q["quantization"] == {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                                 "bnb_4bit_compute_dtype": "float32"}
    # tiny GLM: 12 linears of 393,216 weights in nf4 (215,960 bytes, as the research measured), the rest in fp32
    from gluekit.memory import count_trainables, model_config_for
    from gluekit.quantization import nf4_bytes

    t = count_trainables(model_config_for(None), load_config(TINY).peft_config_object())
    n_q = sum(i * o for i, o in t.linears)
    assert n_q == 393_216 and sum(nf4_bytes(i * o) for i, o in t.linears) == 215_960
    assert q["bytes"]["checkpointing_off"]["weights"] == 215_960 + 4 * (t.total_params - n_q)
