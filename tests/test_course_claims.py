"""gluekit.course.claims: the explanation's claims as data, a verdict's allowed values, the summary table."""
import pytest

from gluekit.course import claims


def test_claims_are_unique_bilingual_and_name_a_field():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids)) == 20
    for c in claims.CLAIMS:
        assert c.claim_zh and c.claim_en and c.field
    assert claims.LORA_YAML.is_file() and claims.TINY_YAML.is_file()


def test_verdict_must_be_known():
    with pytest.raises(ValueError, match="verdict must be one of"):
        claims.ClaimCheck("x", "", "", "maybe", "")


def test_result_and_table():
    r = claims.result("lora_alpha_is_scaling", "partly", "alpha / r")
    assert (r.field, r.verdict, r.claim_en) == ("peft_config.lora_alpha", "partly", "lora_alpha is LoRA's scaling factor.")
    assert str(r).startswith("[partly] lora_alpha_is_scaling (peft_config.lora_alpha)")
    text = claims.table([r, claims.result("logs_every_10_steps", "holds", "")])
    assert text.splitlines()[2].startswith("partly   peft_config.lora_alpha ")
    assert text.endswith("2 claims: 1 holds, 0 wrong, 1 partly")


def test_verdict_html_counts_and_hides_the_detail():
    rs = [claims.result("lora_alpha_is_scaling", "partly", "alpha / r <b>"), claims.result("logs_every_10_steps", "holds", "")]
    html = claims.verdict_html(rs)
    assert "<tr><td><b>partly</b></td><td>1</td>" in html and "<tr><td><b>wrong</b></td><td>0</td>" in html
    summary, detail = html.split("<details>")
    assert "alpha / r" not in summary and "alpha / r &lt;b&gt;" in detail  # evidence only behind the toggle, escaped
