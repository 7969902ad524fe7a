"""gluekit.claims: every claim of the seed explanation gets the verdict its check computes."""
import pytest

from gluekit import claims

EXPECTED = {
    "combine_concatenates": "wrong",
    "lengths_count_characters": "wrong",
    "input_cut_to_first_512": "wrong",
    "max_steps_stops_training": "holds",
    "update_is_lr_times_gradient": "wrong",
    "two_devices_two_samples": "holds",
    "workers_are_threads": "wrong",
    "unused_columns_kept": "holds",
    "checkpoints_every_500": "holds",
    "output_dir_holds_model": "partly",
    "lr_constant_between_checkpoints": "wrong",
    "log_level_info_logs_progress": "partly",
    "logs_every_10_steps": "holds",
    "log_line_format": "wrong",
    "eval_every_500": "holds",
    "eval_sees_8_samples": "wrong",
    "eval_reports_loss": "wrong",
    "predict_generates_text": "holds",
    "max_new_tokens_caps_replies": "holds",
    "lora_alpha_is_scaling": "partly",
}


def test_every_claim_has_one_check_and_an_expected_verdict():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(claims.CHECKS) == set(EXPECTED)
    for c in claims.CLAIMS:
        assert c.claim_zh and c.claim_en and c.field


@pytest.mark.parametrize("claim_id", list(EXPECTED))
def test_verdict(claim_id):
    r = claims.check(claim_id)
    assert isinstance(r, claims.ClaimCheck)
    assert r.id == claim_id and r.claim_en == claims.CLAIMS_BY_ID[claim_id].claim_en
    assert r.verdict == EXPECTED[claim_id], r.evidence
    assert r.evidence and "/tmp" not in r.evidence


def test_all_claims_and_table():
    results = claims.all_claims()
    assert [r.id for r in results] == [c.id for c in claims.CLAIMS]
    text = claims.table(results)
    counts = {v: list(EXPECTED.values()).count(v) for v in claims.VERDICTS}
    assert f"{len(EXPECTED)} claims: {counts['holds']} holds, {counts['wrong']} wrong, {counts['partly']} partly" in text


def test_short_run_leaves_transformers_logging_as_it_was():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    claims.short_run()
    assert hf_logging.get_verbosity() == before


def test_verdict_must_be_known():
    with pytest.raises(ValueError):
        claims.ClaimCheck("x", "", "", "maybe", "")


def test_reference_eval_prompt_keeps_the_answer(tok):
    from gluekit.data import eval_examples

    chat = claims.SEED_CHAT
    answer = chat[-1]["content"]
    ref = tok.decode(claims.reference_eval_prompt(chat, tok, 512))
    ours = eval_examples(chat, tok, combine=True, max_input_length=512, max_output_length=512)[0]
    assert answer in ref and ref.endswith("[gMASK]")
    text = tok.decode(ours["prompt_ids"])
    assert answer not in text and text.endswith("<|assistant|>") and ours["reference"] == answer


def test_resume_actions(tmp_path):
    missing = tmp_path / "missing"
    assert claims.reference_resume_action("no", missing).startswith("crash")
    assert claims.gluekit_resume_action("no", missing) == "train fresh"
    out = tmp_path / "out"
    (out / "checkpoint-5").mkdir(parents=True)
    (out / "checkpoint-5" / "trainer_state.json").write_text("{}")
    assert claims.reference_resume_action("no", out).startswith("skip training")
    assert claims.gluekit_resume_action("no", out).startswith("refuse:")
    assert claims.reference_resume_action("yes", out) == claims.gluekit_resume_action("yes", out) == "resume from checkpoint-5"
    assert claims.reference_resume_action("5", out) == claims.gluekit_resume_action("5", out) == "resume from checkpoint-5"
    assert claims.reference_resume_action(None, out) == "train fresh"
    assert (out / "checkpoint-5").is_dir()  # gluekit's side never deletes
