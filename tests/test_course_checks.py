"""gluekit.course.checks (with .runs): every claim of the seed explanation gets the verdict its check computes."""
import pytest

from gluekit.course import checks, claims
from gluekit.course.runs import short_run

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
    assert set(ids) == set(checks.CHECKS) == set(EXPECTED)


@pytest.mark.parametrize("claim_id", list(EXPECTED))
def test_verdict(claim_id):
    r = checks.check(claim_id)
    assert isinstance(r, claims.ClaimCheck)
    assert r.id == claim_id and r.claim_en == claims.CLAIMS_BY_ID[claim_id].claim_en
    assert r.verdict == EXPECTED[claim_id], r.evidence
    assert r.evidence and "/tmp" not in r.evidence


def test_epochs_default_is_read_from_the_trainer_arguments():
    from transformers import Seq2SeqTrainingArguments

    default = Seq2SeqTrainingArguments(output_dir="unused").num_train_epochs
    assert f"(num_train_epochs default {default:g})" in checks.check("max_steps_stops_training").evidence


def test_all_claims_and_table():
    results = checks.all_claims()
    assert [r.id for r in results] == [c.id for c in claims.CLAIMS]
    text = claims.table(results)
    counts = {v: list(EXPECTED.values()).count(v) for v in claims.VERDICTS}
    assert f"{len(EXPECTED)} claims: {counts['holds']} holds, {counts['wrong']} wrong, {counts['partly']} partly" in text


def test_short_run_leaves_transformers_logging_as_it_was():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity(), list(hf_logging.get_logger().handlers)
    run = short_run()
    assert (hf_logging.get_verbosity(), list(hf_logging.get_logger().handlers)) == before
    assert any(m.startswith("Saving model checkpoint") for _, m in run.log_messages)  # captured, not on stderr


def test_evaluation_verdicts_come_from_the_reference_run():
    """The reference's own evaluation decides: it scores every sample, logs no loss, generates only when told."""
    from gluekit.course.runs import reference_eval_run

    on, off = reference_eval_run(True), reference_eval_run(False)
    assert on.scored == on.num_samples > 8 and on.generate_calls == on.batches == 3 and "eval_loss" not in on.metrics
    assert off.generate_calls == 0 and off.error.startswith("UnboundLocalError")
    dropped = reference_eval_run(True, True)
    assert dropped.collator_keys == ["input_ids"] and dropped.error == "KeyError: 'output_ids'"
    assert f"compute_metrics scored {on.scored} predictions" in checks.check("eval_sees_8_samples").evidence
