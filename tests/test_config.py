import dataclasses

import pytest
import yaml  # PyYAML comes with transformers' dependencies; used only to show the YAML 1.1 difference

from gluekit import ConfigError, load_config
from gluekit.config import parse_scalar


def test_seed_lora_yaml_loads_verbatim_with_yaml12_numbers(configs):
    cfg = load_config(f"{configs}/lora.yaml")
    assert cfg.training_args["learning_rate"] == 0.0005
    assert isinstance(cfg.training_args["learning_rate"], float)
    assert cfg.combine is True and cfg.max_input_length == 512 and cfg.max_output_length == 512
    assert cfg.max_length == 1025
    assert cfg.data_config.train_file == "train.jsonl" and cfg.data_config.num_proc == 1
    assert cfg.peft_config["target_modules"] == ["query_key_value"]


def test_shipped_lora_yaml_is_the_seed_byte_for_byte(configs):
    import pathlib

    seed = pathlib.Path(configs).parent.parent / "shared" / "seed" / "lora.yaml"
    if not seed.exists():
        pytest.skip("shared/seed not beside this checkout")
    assert (pathlib.Path(configs) / "lora.yaml").read_bytes() == seed.read_bytes()


def test_pyyaml_would_read_the_learning_rate_as_a_string(configs):
    with open(f"{configs}/lora.yaml", encoding="utf-8") as f:
        assert yaml.safe_load(f)["training_args"]["learning_rate"] == "5e-4"


def test_ecosystem_objects(configs):
    from peft import LoraConfig
    from transformers import GenerationConfig, Seq2SeqTrainingArguments

    cfg = load_config(f"{configs}/lora.yaml")
    args = cfg.training_arguments()
    assert isinstance(args, Seq2SeqTrainingArguments)
    assert args.learning_rate == 0.0005 and args.max_steps == 3000 and args.predict_with_generate
    assert isinstance(args.generation_config, GenerationConfig) and args.generation_config.max_new_tokens == 512
    pc = cfg.peft_config_object()
    assert isinstance(pc, LoraConfig) and pc.r == 8 and pc.lora_alpha == 32


def test_generation_config_keeps_the_models_stop_tokens(configs):
    from transformers import GenerationConfig

    cfg = load_config(f"{configs}/lora.yaml")
    gen = cfg.generation_config(GenerationConfig(eos_token_id=[1, 2, 3], pad_token_id=1))
    assert gen.eos_token_id == [1, 2, 3] and gen.max_new_tokens == 512


def test_overrides_parse_with_yaml12_rules(configs):
    cfg = load_config(f"{configs}/lora.yaml", ["training_args.max_steps=200", "training_args.learning_rate=1e-3",
                                                "combine=false", "peft_config.r=16"])
    assert cfg.training_args["max_steps"] == 200
    assert cfg.training_args["learning_rate"] == 0.001
    assert cfg.combine is False and cfg.peft_config["r"] == 16
    assert parse_scalar("5e-4") == 0.0005 and parse_scalar("yes") == "yes"


def test_override_dict_and_bad_override(configs):
    cfg = load_config(f"{configs}/lora.yaml", {"training_args.max_steps": 7})
    assert cfg.training_args["max_steps"] == 7
    with pytest.raises(ConfigError, match="expected FIELD.PATH=VALUE"):
        load_config(f"{configs}/lora.yaml", ["training_args.max_steps"])


def test_all_problems_collected_once_with_lines(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "data_config:\n  train_file: train.jsonl\n  val_fil: dev.jsonl\n"
        "max_input_length: 512\nmax_output_length: 512\n"
        "training_args:\n  learning_rate: '5e-4'\n  evaluation_strategy: steps\n  max_steps: -5\n"
        "peft_config:\n  peft_type: LORA\n  r: 0\n  lora_dropout: 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    msgs = e.value.problems
    assert len(msgs) == 6, msgs
    text = "\n".join(msgs)
    assert "bad.yaml:3: `data_config.val_fil`: unknown key. Did you mean `val_file`?" in text
    assert "bad.yaml:7: `training_args.learning_rate`: must be a number, got '5e-4' (a string)." in text
    assert "`training_args.evaluation_strategy`: was removed in transformers 5. Rename it to `eval_strategy`." in text
    assert "`training_args.max_steps`: must be > 0 (or -1 to use num_train_epochs), got -5." in text
    assert "`peft_config.r`: must be >= 1, got 0." in text
    assert "`peft_config.lora_dropout`: must be in [0, 1), got 1.5." in text


def test_eval_strategy_needs_a_val_file(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("data_config: {train_file: t.jsonl}\nmax_input_length: 8\nmax_output_length: 8\n"
                   "training_args: {eval_strategy: steps}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="`training_args.eval_strategy`: is 'steps' but data_config.val_file is not set"):
        load_config(bad)


def test_missing_data_files_named_when_data_dir_given(configs, tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(f"{configs}/lora.yaml", data_dir=tmp_path)
    assert sum("not found in data directory" in p for p in e.value.problems) == 3


def test_freezev_accepted_with_a_note(tmp_path, configs):
    text = open(f"{configs}/lora.yaml", encoding="utf-8").read() + "freezeV: True\n"
    (tmp_path / "v.yaml").write_text(text, encoding="utf-8")
    cfg = load_config(tmp_path / "v.yaml")
    assert cfg.freezeV is True
    assert any("no effect on text models" in n for n in cfg.notes)


def test_every_shipped_yaml_config_validates(configs, monkeypatch):
    import pathlib

    from gluekit.config import files

    monkeypatch.chdir(pathlib.Path(configs).parent)  # lora-0414.yaml names configs/ds_zero_2.json from here, as GLM-4's does
    found = sorted(pathlib.Path(configs).glob("*.yaml"))
    assert {p.name for p in found} == {"lora.yaml", "lora-0414.yaml", "tiny.yaml", "ptuning_v2.yaml", "sft.yaml"}
    for p in found:  # planning needs no DeepSpeed: every file loads on this machine
        assert dataclasses.is_dataclass(load_config(p))
    # On a machine without the deepspeed package, the machine check finds sft.yaml's one problem
    monkeypatch.setattr(files, "deepspeed_installed", lambda: False)
    with pytest.raises(ConfigError) as e:
        load_config(f"{configs}/sft.yaml", check_machine=True)
    assert e.value.problems == ["sft.yaml:31: `training_args.deepspeed`: is set but the deepspeed package is "
                                "not installed. `pip install deepspeed` on a CUDA machine, or remove the key (`-o training_args.deepspeed=null` for one run)."]
    monkeypatch.setattr(files, "deepspeed_installed", lambda: True)
    assert load_config(f"{configs}/sft.yaml", check_machine=True).notes == []
    for p in found:
        if p.name != "sft.yaml":
            assert dataclasses.is_dataclass(load_config(p, check_machine=True))


def test_sibling_configs_have_the_reference_shapes(configs):
    import json

    pt = load_config(f"{configs}/ptuning_v2.yaml")
    assert pt.peft_config_object().peft_type.value == "PREFIX_TUNING"
    assert (pt.peft_config["num_virtual_tokens"], pt.peft_config["num_attention_heads"], pt.peft_config["token_dim"]) == (512, 2, 256)
    assert pt.training_args["per_device_train_batch_size"] == 4 and pt.training_args["per_device_eval_batch_size"] == 16
    for stage in (2, 3):
        ds = json.load(open(f"{configs}/ds_zero_{stage}.json"))
        assert ds["zero_optimization"]["stage"] == stage
        assert ds["train_micro_batch_size_per_gpu"] == ds["bf16"]["enabled"] == ds["optimizer"]["params"]["lr"] == "auto"
