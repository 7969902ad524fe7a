"""A corpus of broken (and merely awkward) JSONL data files, run through ``gluekit check``.

Every case ends one of three ways, never silently:
* ``error``: exit 1, each problem as ``train.jsonl:LINE: ...``, all problems in one report, no traceback;
* ``skip``: exit 0, the sample is counted and its line reported (``--strict`` turns it into an error);
* ``ok``: an accepted quirk (BOM, CRLF, blank lines): exit 0 with the right number of samples.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import pytest

from gluekit import DataError, read_jsonl
from gluekit.cli import main
from gluekit.tokens import IGNORE_INDEX

CONFIG = """\
data_config:
  train_file: train.jsonl
combine: true
max_input_length: 48
max_output_length: 16
training_args:
  output_dir: ./out
  max_steps: 2
  eval_strategy: 'no'
  report_to: none
peft_config: {peft_type: LORA, task_type: CAUSAL_LM, r: 4, lora_alpha: 8, target_modules: all-linear}
"""

USER = {"role": "user", "content": "成都有什么好吃的?"}
REPLY = {"role": "assistant", "content": "成都的特色美食是担担面。"}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def line(*messages, **extra) -> str:
    return json.dumps({"messages": list(messages), **extra}, ensure_ascii=False)


GOOD = line(USER, REPLY)


def jsonl(*lines: str, end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode("utf-8")


@dataclass
class Case:
    name: str
    data: bytes
    kind: str  # "error" | "skip" | "ok"
    expect: list[str] = field(default_factory=list)
    n: int = 1  # problems (error), skipped samples (skip) or samples (ok)


LONG_USER = {"role": "user", "content": "请详细介绍一下这座城市的历史和文化。" * 20}
CASES = [
    # ---- JSON itself
    Case("invalid_json_at_line_3", jsonl(GOOD, GOOD, '{"messages": [{"role": "user", "content": "你好"}', GOOD), "error",
         ["train.jsonl:3: invalid JSON at column 48: Expecting ',' delimiter"]),
    Case("trailing_comma", jsonl(GOOD, GOOD[:-1] + ",}"), "error", ["train.jsonl:2: invalid JSON at column"]),
    Case("line_is_an_array", jsonl("[1, 2]", GOOD), "error",
         ["train.jsonl:1: each line must be a JSON object like {\"messages\": [...]}, got list (a JSON array: write one conversation object per line)"]),
    Case("pretty_printed_json", json.dumps([{"messages": [USER, REPLY]}], ensure_ascii=False, indent=2).encode(), "error",
         ["train.jsonl:1: the file is one JSON document spread over many lines, not JSON Lines; write one {\"messages\": [...]} object per line"]),
    Case("non_utf8_line", jsonl(GOOD).replace(b"\n", b"\n", 1) + line({"role": "user", "content": "北京"}, REPLY).encode("gb18030") + b"\n",
         "error", ["train.jsonl:2: not UTF-8 (byte", "it reads as GBK/GB18030 (a Chinese Windows encoding): re-save the file as UTF-8"]),
    Case("empty_file", b"", "error", ["train.jsonl: no conversations (the file is empty)."]),
    Case("only_blank_lines", b"\n  \n\r\n", "error", ["train.jsonl: no conversations (the file is empty)."]),
    # ---- the record
    Case("missing_messages_alpaca", jsonl(json.dumps({"instruction": "北京有什么好吃的?", "output": "烤鸭"}, ensure_ascii=False)), "error",
         ["train.jsonl:1: missing key \"messages\" (this looks like an instruction/output record; convert it to messages)"]),
    Case("sharegpt_record", jsonl(json.dumps({"conversations": [{"from": "human", "value": "你好"}]})), "error",
         ["train.jsonl:1: missing key \"messages\" (this looks like ShareGPT's \"conversations\" with from/value"]),
    Case("empty_conversation", jsonl(GOOD, line()), "error",
         ["train.jsonl:2: \"messages\" must be a non-empty list of {\"role\", \"content\"} objects, got an empty list"]),
    Case("messages_not_a_list", jsonl(json.dumps({"messages": {"role": "user", "content": "x"}})), "error",
         ["train.jsonl:1: \"messages\" must be a non-empty list of {\"role\", \"content\"} objects, got dict"]),
    # ---- roles and order
    Case("role_tool", jsonl(line(USER, {"role": "assistant", "content": "get_weather\n{}"}, {"role": "tool", "content": "{}"}, REPLY)), "error",
         ["train.jsonl:1: messages[2].role 'tool' is not one of system, user, assistant, observation (GLM-4 calls a tool result \"observation\")"]),
    Case("roles_human_gpt", jsonl(line({"role": "human", "content": "你好"}, {"role": "gpt", "content": "你好。"})), "error",
         ["train.jsonl:1: messages[0].role 'human' is not one of", "(ShareGPT's \"human\" is GLM-4's \"user\")",
          "train.jsonl:1: messages[1].role 'gpt' is not one of"], n=2),
    Case("role_missing", jsonl(json.dumps({"messages": [{"from": "human", "value": "你好"}]})), "error",
         ["train.jsonl:1: messages[0] has no \"role\"; keys found: ['from', 'value'] (ShareGPT's from/value: rename to role/content)",
          "train.jsonl:1: messages[0].content must be a string, got NoneType"], n=2),
    Case("content_not_strings", jsonl(line({"role": "user", "content": 42}, REPLY), line({"role": "user", "content": None}, REPLY),
                                      line({"role": "user", "content": [{"type": "text", "text": "你好"}]}, REPLY),
                                      line(USER, {"role": "assistant", "content": None, "tool_calls": []})), "error",
         ["train.jsonl:1: messages[0].content must be a string, got int",
          "train.jsonl:2: messages[0].content must be a string, got NoneType",
          "train.jsonl:3: messages[0].content must be a string, got list (content parts are not supported: join the text into one string)",
          "train.jsonl:4: messages[1].content must be a string, got NoneType (OpenAI tool_calls are not read"], n=4),
    Case("no_assistant_turn", jsonl(GOOD, line({"role": "system", "content": "你是导游。"}, USER)), "error",
         ["train.jsonl:2: no assistant reply: nothing to learn from this conversation"]),
    Case("empty_last_reply", jsonl(line(USER, REPLY, USER, {"role": "assistant", "content": " \n"})), "error",
         ["train.jsonl:1: the last assistant reply is empty (GLM-4's script crashes on it: '151337 is not in list')"]),
    Case("observation_without_call", jsonl(line(USER, {"role": "observation", "content": "{\"weather\": \"晴\"}"}, REPLY)), "error",
         ["train.jsonl:1: messages[1]: an observation (tool result) must follow an assistant tool call"]),
    Case("system_not_first", jsonl(line(USER, {"role": "system", "content": "你是导游。"}, REPLY)), "error",
         ["train.jsonl:1: messages[1]: a system message must come first"]),
    Case("tools_on_user", jsonl(line({**USER, "tools": [TOOL]}, REPLY)), "error",
         ["train.jsonl:1: messages[0]: only the system message may carry \"tools\""]),
    Case("tools_not_a_list", jsonl(line({"role": "system", "content": "", "tools": TOOL}, USER, REPLY)), "error",
         ["train.jsonl:1: messages[0].tools must be a list of tool definitions, got dict"]),
    Case("ends_with_user", jsonl(line(USER, REPLY, {"role": "user", "content": "谢谢"})), "error",
         ["train.jsonl:1: the conversation ends with a user message after the last assistant reply (with combine: true it would be trained"]),
    Case("blank_lines_keep_line_numbers", b"\n\n" + jsonl(GOOD, "", "{oops", end="\r\n"), "error", ["train.jsonl:5: invalid JSON at column 2"]),
    Case("many_bad_lines", jsonl(*["{oops"] * 60), "error", ["60 data problem(s)", "train.jsonl:50: invalid JSON", "... and 10 more"], n=60),
    # ---- accepted quirks
    Case("bom", b"\xef\xbb\xbf" + jsonl(GOOD, GOOD), "ok", n=2),
    Case("bom_mid_file", jsonl(GOOD) + b"\xef\xbb\xbf" + jsonl(GOOD), "ok", n=2),
    Case("crlf", jsonl(GOOD, GOOD, GOOD, end="\r\n"), "ok", n=3),
    Case("blank_and_whitespace_lines", jsonl("", GOOD, "   ", GOOD, "\t"), "ok", n=2),
    Case("no_final_newline", jsonl(GOOD, GOOD)[:-1], "ok", n=2),
    # ---- lengths: counted and reported, never a zero-label sample trained
    Case("too_long_for_the_limits", jsonl(GOOD, line(LONG_USER, REPLY), GOOD), "skip", ["lines 2"]),
    Case("very_long_line", jsonl(GOOD, line({"role": "user", "content": "长" * 100_000}, REPLY)), "skip", ["lines 2"]),
    Case("everything_too_long", jsonl(line(LONG_USER, REPLY), line(LONG_USER, REPLY)), "error",
         ["train.jsonl: every sample lost all its reply tokens to the length limit (65 tokens)."]),
]


def run_check(tmp_path, capsys, files: dict[str, bytes], *args: str, config: str = CONFIG):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for name, content in files.items():
        (data / name).write_bytes(content)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(config, encoding="utf-8")
    rc = main(["check", str(cfg), "--data-dir", str(data), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def test_corpus_is_large_enough():
    assert len(CASES) >= 20 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_data_case(case, tmp_path, capsys):
    rc, out, err = run_check(tmp_path, capsys, {"train.jsonl": case.data})
    if case.kind == "error":
        assert rc == 1, (out, err)
        if case.name != "everything_too_long":
            head = re.search(r"(\d+) data problem\(s\)", err)
            assert head and int(head.group(1)) == case.n, err
            assert sum(bool(re.match(r"  - data_config\.train_file: train\.jsonl(:\d+)?: ", ln)) for ln in err.splitlines()) \
                == min(case.n, 50), err
    else:
        assert rc == 0, err
        assert err == ""
        if case.kind == "ok":
            assert f"train {case.n} samples" in out, out
            assert "0 with no reply token left" in out
        else:  # skip: the count, the file and the lines, on stdout
            assert "1 with no reply token left" in out, out
            assert "note: 1 training sample(s) lose every reply token to the length limit and will be skipped: train.jsonl" in out
    for fragment in case.expect:
        assert fragment in out + err, f"{fragment!r} not in:\n{out}{err}"


@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "skip"], ids=lambda c: c.name)
def test_strict_turns_skips_into_errors(case, tmp_path, capsys):
    rc, _, err = run_check(tmp_path, capsys, {"train.jsonl": case.data}, "--strict")
    assert rc == 1
    assert "train.jsonl:2: no reply token survives the cut to 65 tokens (max_input_length + max_output_length + 1)" in err


def test_accepted_quirks_leave_clean_text(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + jsonl(GOOD, "", GOOD, end="\r\n"))
    rows = read_jsonl(p)
    assert [r["line"] for r in rows] == [1, 3]
    assert rows[0]["messages"] == [USER, REPLY]  # no BOM, no "\r" left in any text


def test_problems_of_every_file_in_one_report(tmp_path, capsys):
    config = CONFIG.replace("  train_file: train.jsonl\n", "  train_file: train.jsonl\n  val_file: dev.jsonl\n  test_file: test.jsonl\n")
    rc, _, err = run_check(tmp_path, capsys, {"train.jsonl": jsonl(GOOD, "{oops"), "dev.jsonl": jsonl(line(USER)),
                                              "test.jsonl": jsonl(GOOD)}, config=config)
    assert rc == 1
    assert "2 data problem(s) in" in err
    assert "data_config.train_file: train.jsonl:2: invalid JSON" in err
    assert "data_config.val_file: dev.jsonl:1: no assistant reply" in err


@pytest.mark.parametrize("files,fragment", [
    ({}, "`data_config.train_file`: file 'train.jsonl' not found in data directory"),
    ({"train.jsonl/": b""}, "`data_config.train_file`: 'train.jsonl' is a directory in data directory"),
], ids=["directory_without_train_file", "train_file_is_a_directory"])
def test_data_directory_problems(tmp_path, capsys, files, fragment):
    (tmp_path / "data").mkdir()
    for name in files:
        (tmp_path / "data" / name.rstrip("/")).mkdir()
    rc, _, err = run_check(tmp_path, capsys, {})
    assert rc == 1 and fragment in err and "1 config problem(s)" in err


def test_data_directory_absent(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    assert main(["check", str(cfg), "--data-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "`data_config`: the data directory" in err and "does not exist" in err and "Traceback" not in err


def test_training_skips_zero_label_samples_and_loss_stays_finite(tmp_path, capsys):
    """A too-long sample among good ones: reported, dropped, and every logged loss is a number."""
    from gluekit import load_config
    from gluekit.checkpoints import training_log
    from gluekit.train import train

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_bytes(jsonl(*[GOOD] * 3, line(LONG_USER, REPLY), *[GOOD] * 4))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    out = tmp_path / "out"
    cfg = load_config(cfg, [f"training_args.output_dir={out}", "training_args.per_device_train_batch_size=4",
                            "training_args.logging_steps=1", "training_args.save_strategy=no", "training_args.log_level=warning",
                            "training_args.disable_tqdm=true"], data_dir=data)
    result = train(cfg, data, print_logs=False)
    printed = capsys.readouterr().out
    assert "dropped 1 training sample(s) with no reply token left (lines [4])" in printed
    assert result.report.empty == [4] and len(result.trainer.train_dataset) == 7
    assert all(any(t != IGNORE_INDEX for t in lab) for lab in result.trainer.train_dataset["labels"])
    losses = [e["loss"] for e in training_log(out) if "loss" in e]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_read_jsonl_raises_data_error_with_total(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_bytes(jsonl(*["{oops"] * 60))
    with pytest.raises(DataError) as e:
        read_jsonl(p)
    assert e.value.total == 60 and len(e.value.problems) == 51 and e.value.problems[-1] == "... and 10 more"
