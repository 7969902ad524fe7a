"""ConfigDraft: edits are -o overrides (the same problems as `gluekit check FILE -o ...`), and the saved file,
read again, is the edited config with the original layout and comments."""
import pytest

from gluekit.cli import main
from gluekit.config import load_config, shipped_config
from gluekit.config.draft import ConfigDraft, scalar_text
from gluekit.errors import ConfigError


def test_field_values_and_undo():
    d = ConfigDraft("tiny.yaml")
    assert d.path == shipped_config("tiny.yaml")
    assert d.value_text("training_args.learning_rate") == "0.003"  # 3.0e-3 in the file
    assert d.value_text("combine") == "false" and d.value_text("peft_config.target_modules") == "all-linear"
    assert d.value_text("training_args.warmup_steps") == ""  # not in the file
    d.set("training_args.max_steps", "20")
    d.set("training_args.warmup_steps", "2")
    assert d.overrides() == ["training_args.max_steps=20", "training_args.warmup_steps=2"]
    d.set("training_args.max_steps", "600")  # the file's own value undoes the edit
    d.set("training_args.warmup_steps", " ")
    assert d.edits == {}
    assert [scalar_text(v) for v in (None, True, 5e-4, "a b", "x: y", ["q", "v"])] == \
        ["null", "true", "0.0005", "a b", '"x: y"', '["q", "v"]']


def test_problems_are_the_ones_gluekit_check_prints(capsys, demo_dir):
    d = ConfigDraft("lora.yaml")
    d.set("training_args.learning_rate", "fast")
    d.set("peft_config.r", "0")
    cfg, problems = d.check(demo_dir)
    assert cfg is None and len(problems) == 2
    assert main(["check", str(d.path), "--data-dir", str(demo_dir), *(x for o in d.overrides() for x in ("-o", o))]) == 1
    assert capsys.readouterr().err.splitlines()[1:] == [f"  - {p}" for p in problems]
    assert "lora.yaml:14: `training_args.learning_rate`: must be a number, got 'fast' (a string)." in problems[0]


def test_saved_file_reads_back_as_the_edited_config_keeping_comments(tmp_path):
    d = ConfigDraft("lora.yaml")
    edits = {"training_args.max_steps": "20", "training_args.learning_rate": "3e-4",
             "peft_config.target_modules": "[q_proj, v_proj]", "training_args.warmup_steps": "2",
             "training_args.generation_config.do_sample": "false", "data_config.num_proc": "1"}
    for k, v in edits.items():
        d.set(k, v)
    out = d.save(tmp_path / "sub" / "my_lora.yaml")
    saved = load_config(out)
    want = load_config(d.path, [f"{k}={v}" for k, v in edits.items()])
    assert saved.to_dict() == want.to_dict()
    text = out.read_text(encoding="utf-8")
    before, after = d.text.splitlines(), text.splitlines()
    assert "  max_steps: 20  # 最大训练步数" in after  # the value replaced, its comment kept
    assert "  learning_rate: 3e-4  # 学习率" in after
    assert "  target_modules: [q_proj, v_proj]  # 目标模块" in after
    assert after[after.index("    max_new_tokens: 512  # 生成的最大新标记数") + 1:][:3] == [
        "    do_sample: false", "  warmup_steps: 2", "  # deepspeed: configs/ds_zero_3.json  # DeepSpeed配置文件路径"]
    assert len(after) == len(before) + 2  # the two new keys; every other line is the file's own
    assert [x for x in after if x not in before] == [
        "  max_steps: 20  # 最大训练步数", "  learning_rate: 3e-4  # 学习率", "    do_sample: false", "  warmup_steps: 2",
        "  target_modules: [q_proj, v_proj]  # 目标模块"]
    tiny = ConfigDraft("tiny.yaml")
    tiny.set("training_args.max_steps", "20")  # an aligned comment keeps its column
    assert "  max_steps: 20               # about 10 epochs" in tiny.edited_text()
    assert d.save(tmp_path / "same.yaml").read_text(encoding="utf-8") == text


def test_unsaveable_edits_fall_back_to_a_plain_dump_and_syntax_errors_save_nothing(tmp_path):
    d = ConfigDraft("tiny.yaml")
    d.set("training_args.generation_config", "{max_new_tokens: 8, top_k: 1}")  # a block replaced by a flow mapping
    d.set("training_args.report_to", "[tensorboard]")
    out = d.save(tmp_path / "a.yaml")
    assert load_config(out).training_args["generation_config"] == {"max_new_tokens": 8, "top_k": 1}
    bad = tmp_path / "bad.yaml"
    bad.write_text("training_args:\n  max_steps: [1\n")
    d = ConfigDraft(bad)
    cfg, problems = d.check()
    assert cfg is None and problems[0].startswith("bad.yaml:") and "invalid YAML" in problems[0]
    with pytest.raises(ConfigError, match="invalid YAML"):
        d.save(tmp_path / "never.yaml")
    assert not (tmp_path / "never.yaml").exists()
    with pytest.raises(ConfigError, match="not found"):
        ConfigDraft(tmp_path / "missing.yaml")
