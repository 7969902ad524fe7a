"""gluekit.course.reference: GLM-4's finetune.py decisions, modelled, next to gluekit's."""
from gluekit.course import claims, reference


def test_reference_eval_prompt_keeps_the_answer(tok):
    from gluekit.data import eval_examples

    chat = claims.SEED_CHAT
    answer = chat[-1]["content"]
    ref = tok.decode(reference.reference_eval_prompt(chat, tok, 512))
    ours = eval_examples(chat, tok, combine=True, max_input_length=512, max_output_length=512)[0]
    assert answer in ref and ref.endswith("[gMASK]")
    text = tok.decode(ours["prompt_ids"])
    assert answer not in text and text.endswith("<|assistant|>") and ours["reference"] == answer


def test_resume_actions(tmp_path):
    missing = tmp_path / "missing"
    assert reference.reference_resume_action("no", missing).startswith("crash")
    assert reference.gluekit_resume_action("no", missing) == "train fresh"
    out = tmp_path / "out"
    (out / "checkpoint-5").mkdir(parents=True)
    (out / "checkpoint-5" / "trainer_state.json").write_text("{}")
    assert reference.reference_resume_action("no", out).startswith("skip training")
    assert reference.gluekit_resume_action("no", out).startswith("refuse:")
    # the reference takes any checkpoint-N folder; gluekit checks its files first, and this one holds no weights
    assert reference.reference_resume_action("yes", out) == reference.reference_resume_action("5", out) == "resume from checkpoint-5"
    for word in ("yes", "5"):
        action = reference.gluekit_resume_action(word, out)
        assert action.startswith("refuse:") and "checkpoint-5" in action and "no weights file" in action, action
    assert reference.reference_resume_action(None, out) == "train fresh"
    assert (out / "checkpoint-5").is_dir()  # gluekit's side never deletes


def test_reference_eval_samples_stop_instead_of_cutting(tok):
    chat = claims.SEED_CHAT
    full = reference.reference_eval_samples(chat, tok, False, 512, 512)
    assert len(full) == 2 and tok.decode(full[1]["input_ids"]).endswith("<|assistant|>")
    limit = len(full[0]["input_ids"]) + 1  # the history reaches it before the second reply
    short = reference.reference_eval_samples(chat, tok, False, limit, 512)
    assert len(short) == 1 and short[0]["input_ids"] == full[0]["input_ids"]  # stopped, never cut


def test_reference_resume_outcome_follows_into_the_trainer(tmp_path):
    import shutil

    from gluekit.checkpoints import list_checkpoints
    from gluekit.course.runs import short_run

    trainer = short_run().result.trainer
    empty = tmp_path / "empty"
    empty.mkdir()
    out = reference.reference_resume_outcome("10", empty, trainer)
    assert out.startswith("resume from checkpoint-10, then the Trainer fails: ValueError: Can't find a valid checkpoint")
    good = tmp_path / "good"
    shutil.copytree(list_checkpoints(short_run().output_dir)[0], good / "checkpoint-10")
    assert reference.reference_resume_outcome("yes", good, trainer) == "resume from checkpoint-10: the Trainer loads it"
    assert reference.reference_resume_outcome("no", empty, trainer).startswith("skip training")
