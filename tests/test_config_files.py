"""gluekit.config.files: the shipped configs (one copy, found by a bare name) and the DeepSpeed file lookup."""
import json
import os
from pathlib import Path

import pytest

from gluekit import ConfigError, load_config
from gluekit.cli import main
from gluekit.config import files, shipped_config, shipped_configs

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ["ds_zero_2.json", "ds_zero_3.json", "lora-0414.yaml", "lora.yaml", "ptuning_v2.yaml", "sft.yaml", "tiny.yaml"]


def test_repository_configs_folder_is_the_package_data():
    # one copy: the top-level configs/ (read by notebooks and docs) is a symlink to gluekit/configs/
    assert (REPO / "configs").is_symlink() and os.readlink(REPO / "configs") == "gluekit/configs"
    assert (REPO / "configs").resolve() == (REPO / "gluekit" / "configs").resolve() == files.SHIPPED_DIR
    assert sorted(p.name for p in (REPO / "configs").iterdir()) == SHIPPED


def test_pyproject_declares_the_shipped_files_as_package_data():
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["gluekit"]
    declared = {p.name for pattern in data for p in (REPO / "gluekit").glob(pattern)}
    assert set(SHIPPED) <= declared
    assert all(list((REPO / "gluekit").glob(pattern)) for pattern in data), data  # no pattern matches nothing


def test_shipped_configs_list_names_descriptions_paths():
    shipped = shipped_configs()
    assert [c.name for c in shipped] == SHIPPED
    assert all(c.path == files.SHIPPED_DIR / c.name and c.path.is_file() for c in shipped)
    by_name = {c.name: c.description for c in shipped}
    # from the file's opening comment (first sentence) ...
    assert by_name["ptuning_v2.yaml"] == "GLM-4's P-tuning v2 sibling of lora.yaml: PEFT prefix tuning instead of LoRA."
    assert by_name["tiny.yaml"].startswith("The CPU demo: lora.yaml's structure") and by_name["tiny.yaml"].endswith("on 2 cores.")
    # ... or from the table, for the seed file (byte for byte GLM-4's) and the JSON files
    assert by_name["lora.yaml"] == files.DESCRIPTIONS["lora.yaml"]
    assert by_name["ds_zero_3.json"] == files.DESCRIPTIONS["ds_zero_3.json"]


def test_shipped_config_by_name():
    assert shipped_config("lora.yaml") == files.SHIPPED_DIR / "lora.yaml"
    for bad in ("lora.yml", "../pyproject.toml"):
        with pytest.raises(ConfigError) as e:
            shipped_config(bad)
        assert e.value.problems == [f"no config {bad!r} is shipped with gluekit. Shipped: {', '.join(SHIPPED)} (`gluekit configs`)."]


def test_bare_name_means_the_shipped_copy_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config("tiny.yaml")
    assert cfg.path == files.SHIPPED_DIR / "tiny.yaml"
    assert cfg.notes[0] == f"config tiny.yaml: the copy shipped with gluekit ({files.SHIPPED_DIR / 'tiny.yaml'})."
    assert cfg.training_args["max_steps"] == 600


def test_a_file_in_the_current_folder_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (files.SHIPPED_DIR / "tiny.yaml").read_text(encoding="utf-8").replace("max_steps: 600", "max_steps: 7")
    Path("tiny.yaml").write_text(text, encoding="utf-8")
    cfg = load_config("tiny.yaml")
    assert cfg.path == Path("tiny.yaml") and cfg.training_args["max_steps"] == 7 and cfg.notes == []


def test_a_path_with_a_folder_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_config("somewhere/tiny.yaml")
    assert e.value.problems == ["config file 'somewhere/tiny.yaml' not found. Check the path (it is relative to the current folder)."]


def test_cli_check_and_plan_say_which_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    note = f"note: config tiny.yaml: the copy shipped with gluekit ({files.SHIPPED_DIR / 'tiny.yaml'})."
    assert main(["check", "tiny.yaml"]) == 0
    out = capsys.readouterr().out
    assert "config tiny.yaml: OK" in out and note in out
    assert main(["plan", "lora.yaml", "--samples", "600"]) == 0
    out = capsys.readouterr().out
    assert note.replace("tiny", "lora") in out and "steps per epoch 600, max_steps 3000" in out


def test_cli_configs_lists_every_shipped_file(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for c in shipped_configs():
        assert f"  {c.name:<15}  {c.description}\n" in out
        assert f"  {'':<15}  {c.path}\n" in out


# ---------------------------------------------------------------- training_args.deepspeed

def _ds_config(folder: Path, value: str) -> tuple[Path, int]:
    """tiny.yaml with ``training_args.deepspeed: value``, written to ``folder/c.yaml``; and that key's line."""
    text = (files.SHIPPED_DIR / "tiny.yaml").read_text(encoding="utf-8").replace(
        "  report_to: none\n", f"  report_to: none\n  deepspeed: {value}\n")
    path = folder / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text.splitlines().index(f"  deepspeed: {value}") + 1


def test_deepspeed_lookup_current_folder_first_then_the_configs(tmp_path, monkeypatch):
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    assert files.deepspeed_candidates("ds.json", Path("../cfgs")) == [Path("ds.json"), Path("../cfgs/ds.json")]
    assert files.deepspeed_candidates("ds.json", tmp_path / "run") == [Path("ds.json")]  # one folder, one try
    assert files.deepspeed_candidates("ds.json", None) == [Path("ds.json")]
    assert files.deepspeed_candidates(str(tmp_path / "x.json"), Path("../cfgs")) == [tmp_path / "x.json"]
    assert files.find_deepspeed("ds.json", Path("../cfgs")) is None
    (tmp_path / "cfgs" / "ds.json").write_text("{}")
    assert files.find_deepspeed("ds.json", Path("../cfgs")) == Path("../cfgs/ds.json")
    (tmp_path / "run" / "ds.json").write_text("{}")
    assert files.find_deepspeed("ds.json", Path("../cfgs")) == Path("ds.json")  # as GLM-4's finetune.py


def test_deepspeed_not_found_names_every_path_tried(tmp_path, monkeypatch):
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    _, line = _ds_config(tmp_path, "ds_zero_9.json")
    with pytest.raises(ConfigError) as e:
        load_config("../c.yaml")
    assert e.value.problems == [
        f"c.yaml:{line}: `training_args.deepspeed`: file 'ds_zero_9.json' not found (looked at ds_zero_9.json "
        "and ../ds_zero_9.json). A relative path is looked up in the current folder, then beside the config file; "
        "fix the path or delete the key."]
    assert files.deepspeed_not_found("d.json", None) == (
        "file 'd.json' not found (looked at d.json). A relative path is looked up in the current folder; "
        "fix the path or delete the key.")


def test_deepspeed_value_kept_as_written_and_resolved_when_arguments_are_built(tmp_path, monkeypatch):
    import transformers

    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    cfg = load_config(_ds_config(tmp_path, "ds.json")[0])
    assert cfg.training_args["deepspeed"] == "ds.json"  # validation rewrites nothing
    assert cfg.deepspeed_path() == tmp_path / "ds.json"  # the config was given by its absolute path
    built = {}
    monkeypatch.setattr(transformers, "Seq2SeqTrainingArguments", lambda **kw: built.update(kw) or "args")
    monkeypatch.setattr(files, "deepspeed_installed", lambda: False)
    with pytest.raises(ConfigError) as e:  # not transformers' PackageNotFoundError
        cfg.training_arguments()
    assert e.value.problems == ["`training_args.deepspeed`: is set but the deepspeed package is not installed. "
                                "`pip install deepspeed` on a CUDA machine, or remove the key (`-o training_args.deepspeed=null` for one run)."] and built == {}
    monkeypatch.setattr(files, "deepspeed_installed", lambda: True)
    assert cfg.training_arguments() == "args" and built["deepspeed"] == str(tmp_path / "ds.json")
    assert cfg.training_args["deepspeed"] == "ds.json"
    built.clear()
    cfg.training_arguments(portable=True, bf16=True)  # planning: no machine-dependent argument
    assert built["max_steps"] == 600 and "deepspeed" not in built and "bf16" not in built
    Path(tmp_path / "ds.json").unlink()
    with pytest.raises(ConfigError, match="file 'ds.json' not found"):  # moved away since validation
        cfg.training_arguments()


def test_plan_runs_without_deepspeed_and_check_says_this_machine_cannot(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(files, "deepspeed_installed", lambda: False)
    assert main(["plan", "sft.yaml", "--json"]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert d["max_steps"] == 3000 and d["memory"]["zero_stage"] == 3  # sft.yaml's ds_zero_3.json, found beside it
    assert ("note: training_args.deepspeed is set but the deepspeed package is not installed here: this machine can plan "
            "the run, not train it (`gluekit check` reports it as a problem).") in captured.err
    assert main(["check", "sft.yaml"]) == 1
    err = capsys.readouterr().err
    assert err == ("gluekit check: 1 config problem(s) in sft.yaml:\n  - sft.yaml:31: `training_args.deepspeed`: is set but the "
                   "deepspeed package is not installed. `pip install deepspeed` on a CUDA machine, or remove the key (`-o training_args.deepspeed=null` for one run).\n")


CURRENT = Path(os.environ.get("GLUEKIT_SHARED", REPO.parent / "shared")) / "reference" / "glm4-finetune-current"


def test_current_official_configs_unchanged_from_the_references_layout(tmp_path, monkeypatch, capsys, family_data):
    """GLM-4's current lora.yaml / sft.yaml, verbatim, started the reference's way: from a folder holding
    configs/ with the DeepSpeed files (skips without ../shared)."""
    if not CURRENT.is_dir():
        pytest.skip(f"{CURRENT} not present")
    (tmp_path / "configs").mkdir()
    for name in ("lora.yaml", "sft.yaml", "ds_zero_2.json", "ds_zero_3.json"):
        (tmp_path / "configs" / name).write_bytes((CURRENT / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    for name, ds in (("lora.yaml", "ds_zero_2.json"), ("sft.yaml", "ds_zero_3.json")):
        cfg = load_config(f"configs/{name}")
        assert cfg.deepspeed_path() == Path("configs") / ds  # the working folder first, as the reference
    # shipped lora-0414.yaml is the same file with a header comment
    shipped = shipped_config("lora-0414.yaml").read_text(encoding="utf-8")
    assert shipped.endswith((CURRENT / "lora.yaml").read_text(encoding="utf-8"))
    # a machine without DeepSpeed: check says so (not "file not found"), plan still plans
    monkeypatch.setattr(files, "deepspeed_installed", lambda: False)
    assert main(["check", "configs/lora.yaml", "--data-dir", str(family_data)]) == 1
    assert capsys.readouterr().err == (
        "gluekit check: 1 config problem(s) in lora.yaml:\n  - lora.yaml:45: `training_args.deepspeed`: is set but the "
        "deepspeed package is not installed. `pip install deepspeed` on a CUDA machine, or remove the key (`-o training_args.deepspeed=null` for one run).\n")
    assert main(["check", "configs/lora.yaml", "--data-dir", str(family_data), "-o", "training_args.deepspeed=null"]) == 0
    assert "config configs/lora.yaml: OK" in capsys.readouterr().out
    assert main(["plan", "configs/lora.yaml", "--model", "glm-4-9b-0414"]) == 0
    out = capsys.readouterr().out
    assert "peak memory per device (glm-4-9b-0414, bfloat16 weights, ZeRO-2 over 1 devices" in out
    assert "LORA: 5,406,720 of 9,400,279,040 parameters trained" in out
