import json
import subprocess
import sys

from gluekit.cli import main


def test_check_ok(capsys, configs):
    assert main(["check", f"{configs}/tiny.yaml"]) == 0
    out = capsys.readouterr().out
    assert "config" in out and "OK" in out and "600 samples" in out


def test_check_collects_problems_and_exits_1(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data_config: {train_file: train.jsonl}\nmax_input_length: '512'\nmax_output_length: 8\n"
                   "training_args: {learning_rat: 0.1, no_cuda: true}\n", encoding="utf-8")
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "3 config problem(s)" in err
    assert "Did you mean `learning_rate`?" in err and "Rename it to `use_cpu`" in err
    assert "Traceback" not in err


def test_plan_json(capsys, configs):
    assert main(["plan", f"{configs}/lora.yaml", "--json", "--devices", "2"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["steps_per_epoch"] == 300 and d["epochs"] == 10.0 and d["checkpoints"][0] == "checkpoint-500"


def test_train_reference_positional_order_and_chat(tmp_path, configs, demo_dir, capsys):
    """One real `gluekit train` and one real `gluekit chat` process; the refusals and the resume between them
    go through the same ``main`` in this process (each fresh process costs seconds of imports)."""
    out = tmp_path / "o"
    args = ["train", str(demo_dir), "tiny", f"{configs}/tiny.yaml",
            "-o", "training_args.max_steps=4", "-o", "training_args.eval_strategy=no", "-o", f"training_args.output_dir={out}",
            "-o", "training_args.log_level=warning"]
    r = subprocess.run([sys.executable, "-m", "gluekit", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "already holds checkpoint-4" in err and "Traceback" not in err
    assert main(args[:4] + ["no"] + args[4:]) == 1  # "no" means fresh: refused, not silently skipped
    assert "already holds checkpoint-4" in capsys.readouterr().err
    assert main(args + ["latest"]) == 0
    chat = subprocess.run([sys.executable, "-m", "gluekit", "chat", "--adapter", str(out / "adapter"), "-m", "成都有什么好吃的?"],
                          capture_output=True, text=True, timeout=300)
    assert chat.returncode == 0 and chat.stdout.startswith("glm> ")
    assert "gluekit chat: the model runs on the CPU (float32)" in chat.stderr  # where it runs, off stdout


def test_chat_and_merge_name_a_device_that_is_not_there(capsys):
    assert main(["chat", "--device", "gpu0", "-m", "你好"]) == 1
    assert "`device`: not a torch device, got 'gpu0'. Use cpu, cuda or cuda:N." in capsys.readouterr().err
    assert main(["merge", "--adapter", "a", "--out", "o", "--device", "cuda:7"]) == 1
    assert "`device`: 'cuda:7' asked for, but this machine has " in capsys.readouterr().err


def test_plan_exits_1_on_a_lora_target_that_matches_no_layer(capsys, configs):
    # a config problem found only against the model is the config's error, not "memory not estimated"
    rc = main(["plan", f"{configs}/lora.yaml", "--model", "glm-4-9b", "-o", 'peft_config.target_modules=["qkv_typo"]'])
    out, err = capsys.readouterr()
    assert rc == 1 and out == "" and "not estimated" not in err
    assert err.startswith("gluekit plan: 1 config problem(s) in lora.yaml:\n  - `peft_config.target_modules`: "
                          "['qkv_typo'] match no layer of this model. Its linear layers are: down_proj, gate_up_proj")
    assert main(["check", f"{configs}/lora.yaml", "-o", 'peft_config.target_modules=["qkv_typo"]']) == 1
    assert capsys.readouterr().err.split(":", 1)[1] == err.split(":", 1)[1]  # reported as `gluekit check` reports it
