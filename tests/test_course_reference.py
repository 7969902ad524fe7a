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
    assert reference.reference_resume_action("yes", out) == reference.gluekit_resume_action("yes", out) == "resume from checkpoint-5"
    assert reference.reference_resume_action("5", out) == reference.gluekit_resume_action("5", out) == "resume from checkpoint-5"
    assert reference.reference_resume_action(None, out) == "train fresh"
    assert (out / "checkpoint-5").is_dir()  # gluekit's side never deletes
