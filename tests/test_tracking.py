"""gluekit.tracking: GLM-4's top-level ``swanlab:`` key, as notes and as the run's environment (never an error).
The run itself (environment set, SwanLab's own callback given the logs) is tested in test_families."""
from gluekit import load_config
from gluekit.config import shipped_config
from gluekit.tracking import swanlab_callbacks, swanlab_environment, swanlab_notes


def test_environment_as_the_reference_sets_it():
    assert swanlab_environment(None) == swanlab_environment("disabled") == {}
    assert swanlab_environment("cloud") == {"SWANLAB_PROJ_NAME": "GLM4-Finetune"}
    assert swanlab_environment("local") == {"SWANLAB_PROJ_NAME": "GLM4-Finetune", "SWANLAB_MODE": "local"}


def test_notes_say_what_happens_on_this_machine():
    assert swanlab_notes(None, installed=False) == []
    assert swanlab_notes("disabled", installed=True) == ["swanlab: disabled: nothing is reported to SwanLab."]
    assert swanlab_notes("local", installed=False) == [
        "swanlab: local: the swanlab package is not installed, so nothing is reported (as the reference; "
        "`pip install swanlab` to report)."]
    assert swanlab_notes("local", installed=True) == [
        "swanlab: local: training reports to SwanLab project GLM4-Finetune through SwanLab's own callback; logs stay on "
        "this machine (SWANLAB_MODE=local; `swanlab watch ./swanlog` shows them)."]
    assert swanlab_notes("yes", installed=True)[0] == (
        "swanlab: 'yes' is not one of disabled, local, cloud; like the reference, gluekit treats any value but disabled "
        "as cloud (SWANLAB_PROJ_NAME=GLM4-Finetune).")
    assert swanlab_notes(None, installed=True, report_to=["swanlab"]) == [
        "training_args.report_to names swanlab: transformers' built-in SwanLab reporter crashes with swanlab 0.8 or newer "
        "(\"No active Run\") at the first step. Remove it there and write the top-level `swanlab: local` (or cloud): "
        "gluekit then adds SwanLab's own callback."]


def test_the_key_in_a_config_is_a_note_not_a_problem(monkeypatch):
    monkeypatch.setattr("gluekit.tracking.swanlab_installed", lambda: False)
    cfg = load_config(shipped_config("tiny.yaml"), ["swanlab=cloud"])
    assert cfg.swanlab == "cloud" and swanlab_callbacks("cloud") == []
    assert ("swanlab: cloud: the swanlab package is not installed, so nothing is reported (as the reference; "
            "`pip install swanlab` to report).") in cfg.notes
    assert cfg.to_dict()["swanlab"] == "cloud"
