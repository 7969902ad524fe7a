"""The control panel, driven through its widgets' values (no browser): gluekit check's messages as a field
changes, the plan following, Open, Save, and one short training run stopped from the panel, then a chat."""
import time

import pytest

pytest.importorskip("ipywidgets")

from gluekit.config import load_config  # noqa: E402
from gluekit.config.draft import ConfigDraft  # noqa: E402
from gluekit.viz.panel import FIELDS, ControlPanel  # noqa: E402


@pytest.fixture(scope="module")
def panel():
    return ControlPanel("tiny.yaml")


def test_fields_show_the_file_and_edits_give_gluekit_checks_messages(panel, demo_dir):
    assert [f for f, _ in FIELDS] == list(panel.fields)
    assert panel.fields["training_args.max_steps"].value == "600"
    assert panel.fields["training_args.gradient_accumulation_steps"].value == ""  # not in tiny.yaml
    assert panel.messages_text() == "config OK"
    assert "max_steps 600, epochs 8.00" in panel.plan_text and "start" not in panel.messages.value
    panel.fields["training_args.learning_rate"].value = "5e-4x"
    draft = ConfigDraft("tiny.yaml")
    draft.set("training_args.learning_rate", "5e-4x")
    assert panel.problems == draft.check(demo_dir)[1]
    assert panel.messages_text() == ("tiny.yaml:19: `training_args.learning_rate`: must be a number, got '5e-4x' "
                                     "(a string). Write it unquoted, e.g. 5.0e-4 or 0.0005.")
    assert "training_args.learning_rate" in panel.messages.value and panel.start_button.disabled
    assert panel.plan_text == "" and "no plan until the config is valid" in panel.plan.value
    panel.fields["training_args.learning_rate"].value = "5e-4"
    assert panel.messages_text() == "config OK" and not panel.start_button.disabled
    assert "learning rate (linear, warm-up 0): step 1 0.0005," in panel.plan_text


def test_the_plan_follows_the_fields_and_the_model(panel):
    panel.fields["training_args.max_steps"].value = "150"
    panel.fields["training_args.gradient_accumulation_steps"].value = "2"
    lines = panel.plan_text.splitlines()
    assert lines[0] == "samples 600, devices 1, global batch 16 (= 8 per device x 1 x 2 accumulation)"
    assert lines[1] == "steps per epoch 38, max_steps 150, epochs 3.95"
    assert lines[4] == "save: none" or lines[4].startswith("save:")
    assert "(tiny GLM, float32 weights;" in panel.plan_text
    panel.model.value = "glm-4-9b"
    assert "(glm-4-9b, bfloat16 weights;" in panel.plan_text and "9,399,951,360 parameters" in panel.plan_text
    panel.model.value = ""
    panel.fields["peft_config.target_modules"].value = "[nope]"  # no such layer: found while planning, as `gluekit plan` does
    assert panel.problems == ["`peft_config.target_modules`: ['nope'] match no layer of this model. Its linear layers are: "
                              "down_proj, gate_up_proj, k_proj, lm_head, o_proj, q_proj, v_proj (or use \"all-linear\")."]
    assert panel.start_button.disabled and panel.plan_text == ""
    panel.fields["peft_config.target_modules"].value = "all-linear"
    assert panel.messages_text() == "config OK"


def test_open_and_save(panel, tmp_path):
    panel.fields["training_args.max_steps"].value = "30"
    out = panel.save(tmp_path / "mine.yaml")
    assert out == tmp_path / "mine.yaml"
    assert load_config(out).training_args["max_steps"] == 30
    assert load_config(out).training_args["gradient_accumulation_steps"] == 2
    assert panel.save_status.value.count("edits); `gluekit check") == 1 and "finds no problem" in panel.save_status.value
    panel.source.value = "lora.yaml"
    panel.open_button.click()
    assert panel.draft.path.name == "lora.yaml" and panel.draft.edits == {}
    assert panel.fields["training_args.max_steps"].value == "3000"
    assert panel.fields["peft_config.target_modules"].value == '["query_key_value"]'
    panel.open(tmp_path / "mine.yaml")  # a saved file opens with its edits as the file's own values
    assert panel.fields["training_args.max_steps"].value == "30" and panel.draft.edits == {}
    panel.open(tmp_path / "none.yaml")
    assert "not found" in panel.messages.value


def test_train_stop_and_chat(tmp_path):
    edits = {"training_args.max_steps": "40", "training_args.logging_steps": "1", "training_args.eval_strategy": "no",
             "training_args.output_dir": str(tmp_path / "run"), "training_args.save_steps": "1000",
             "data_config.test_file": "null"}
    panel = ControlPanel("tiny.yaml", edits=edits)
    assert panel.messages_text() == "config OK"
    assert panel.send("hello") is None and "train first" in panel.chat_log.value
    assert panel.start()
    assert panel.start_button.disabled and not panel.stop_button.disabled
    end = time.monotonic() + 300
    while panel.progress.value < 2 and panel.run.running and time.monotonic() < end:
        time.sleep(0.05)
    panel.stop_button.click()
    assert panel.run.join(timeout=300), "the run did not stop"
    assert panel.run.error is None, panel.run.traceback
    stopped = panel.run.stopped_at
    assert 2 <= stopped < 40 and panel.run.result.trainer.state.global_step == stopped
    assert panel.progress.value == stopped and panel.progress.max == 40
    losses = [e["loss"] for e in panel.run.result.trainer.state.log_history if "loss" in e]
    assert len(losses) == stopped
    assert (f"stopped after step {stopped}, last logged loss {losses[-1]:.3f}; adapter saved to "
            f"{tmp_path / 'run' / 'adapter'}") in panel.status.value
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert panel.chart.value[:8] == b"\x89PNG\r\n\x1a\n" and panel.live.steps == list(range(1, stopped + 1))
    assert not panel.start_button.disabled and panel.stop_button.disabled and not panel.send_button.disabled
    panel.chat_input.value = "成都在哪个省?"
    reply = panel.send()
    assert isinstance(reply, str) and panel.chat_input.value == ""
    assert panel.history == [{"role": "user", "content": "成都在哪个省?"}, {"role": "assistant", "content": reply}]
    assert "you&gt; 成都在哪个省?" in panel.chat_log.value
