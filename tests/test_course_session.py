"""gluekit.course.session: notebook 12's session. Which session runs where, and that its GPU path keeps
the trained model where it is and generates on its device (tested on CPU with the injected
accelerator ``meta``, as tests/test_device.py does)."""
from types import SimpleNamespace

import pytest
import torch

from gluekit.course.session import SHORT_STEPS, start
from gluekit.tiny import tiny_model_dir
from test_device import DeviceCheck, Stop

GiB = 1024 ** 3


def test_without_a_model_or_a_gpu_the_cpu_stand_in_runs_a_short_tiny_run():
    s = start(environ={})
    assert (s.real, s.model, s.device, s.config.path.name) == (False, None, torch.device("cpu"), "tiny.yaml")
    assert s.config.training_arguments(portable=True).max_steps == SHORT_STEPS == 100
    assert s.config.data_config.test_file is None and s.test_file == "dev.jsonl"  # tiny.yaml's, evaluated by Session.evaluate
    assert s.summary() == ("model: the embedded tiny GLM | config: tiny.yaml, 100 steps (the CPU stand-in) | "
                           "output_dir: runs/12_session\ndevice: every model of the session runs on the CPU (float32)")
    assert s.card_check().startswith("no CUDA card: every model runs on the CPU (float32); the planned peak, ")


def test_a_model_without_an_accelerator_says_why_the_stand_in_runs():
    s = start(environ={"GLUEKIT_MODEL": str(tiny_model_dir())}, device="cpu")
    assert not s.real and s.model is None
    assert s.note == "GLUEKIT_MODEL is set but there is no accelerator: the CPU stand-in runs instead."


@pytest.fixture(scope="module")
def real_session():
    """The real session's choices on this machine: GLUEKIT_MODEL set, the accelerator injected ("meta")."""
    return start(environ={"GLUEKIT_MODEL": str(tiny_model_dir())}, device="meta")


def test_with_a_model_and_an_accelerator_lora_yaml_runs_in_bf16_there(real_session):
    s = real_session
    assert s.real and s.device == torch.device("meta") and s.config.path.name == "lora.yaml"
    assert s.config.training_args["bf16"] is True
    assert s.summary().endswith("device: every model of the session runs on meta (bf16)")
    assert s.family() == (f"model {tiny_model_dir()}: a GlmForCausalLM model (not GLM-4-9B's shape) (GlmForCausalLM, "
                          "transformers' own class, no remote code).")


def test_the_card_check_is_the_card_report_gluekit_check_prints(real_session, monkeypatch):
    from gluekit import cards

    monkeypatch.setattr(cards, "PROBE", lambda: cards.PRESETS["V100"])
    memory = real_session.memory_plan()
    text = real_session.card_check(memory)
    assert text.startswith("card: Tesla V100 (16 GB), 16.0 GiB, compute capability 7.0, bf16 no"), text
    assert "fp16 gives NaN losses with GLM-4" in text
    written = [line for line in text.splitlines() if line.strip().startswith("as written")]
    assert len(written) == 1 and f"{memory.applies.total / GiB:.2f} GiB" in written[0], (written, memory.applies.total)
    monkeypatch.setattr(cards, "PROBE", lambda: None)
    assert real_session.card_check(memory).startswith("no CUDA card: every model runs on")


def test_the_real_session_evaluates_the_trained_model_itself_on_its_device(real_session):
    """No second copy: trained_model() is the Trainer's model object, and evaluate() feeds it on its device."""
    from gluekit.models import load_model, load_tokenizer

    model, tok = load_model(device="meta"), load_tokenizer()
    result = SimpleNamespace(trainer=SimpleNamespace(model=model, processing_class=tok), adapter_dir="adapter")
    got, got_tok = real_session.trained_model(result)
    assert got is model and got_tok is tok and real_session.adapter_dir(result) == "adapter"
    check = DeviceCheck(model)
    try:
        with pytest.raises(Stop):
            real_session.evaluate(model, tok)
    finally:
        check.close()
    assert [k for k, _, _ in check.calls][-1] == "generate" and check.mismatches() == []
