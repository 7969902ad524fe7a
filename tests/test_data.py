import copy
import json
import logging

import pytest

from gluekit import DataError, encode_conversation, eval_examples, read_jsonl
from gluekit.config import sequence_max_length
from gluekit.data import build_train_dataset, clean_message
from gluekit.quiet import transformers_logs
from gluekit.tokens import IGNORE_INDEX, SpecialIds

CONV = [
    {"role": "system", "content": "你是一个旅游助手。"},
    {"role": "user", "content": "成都在哪个省份?"},
    {"role": "assistant", "content": "成都属于四川省。"},
    {"role": "user", "content": "那里有什么好吃的?"},
    {"role": "assistant", "content": "成都的特色美食是担担面。"},
]


def piece(tok, text):
    """Tokens of the text between two special tokens (how the template's text is tokenised)."""
    return tok.encode(text, add_special_tokens=False)


def hand_built(tok, combine):
    """input_ids/labels written out segment by segment from GLM-4's finetune.py semantics."""
    sp = SpecialIds.of(tok)
    segs = [  # (ids, is_assistant_message)
        ([sp.system] + piece(tok, "\n你是一个旅游助手。"), False),
        ([sp.user] + piece(tok, "\n成都在哪个省份?"), False),
        ([sp.assistant] + piece(tok, "\n成都属于四川省。"), True),
        ([sp.user] + piece(tok, "\n那里有什么好吃的?"), False),
        ([sp.assistant] + piece(tok, "\n成都的特色美食是担担面。"), True),
    ]
    ids = [sp.gmask, sp.sop]
    mask = [False, False]
    for i, (seg, is_reply) in enumerate(segs):
        ids += seg
        if combine:  # only tokens after the LAST <|assistant|> are in the mask
            mask += [False] + [i == len(segs) - 1] * (len(seg) - 1)
        else:
            mask += [is_reply] * len(seg)
    ids.append(sp.user)
    shifted = [False] + mask
    return ids, [t if m else IGNORE_INDEX for t, m in zip(ids, shifted)]


@pytest.mark.parametrize("combine", [True, False])
def test_labels_match_hand_built(tok, combine):
    ids, labels = hand_built(tok, combine)
    out = encode_conversation(CONV, tok, combine)
    assert out["input_ids"] == ids
    assert out["labels"] == labels


def test_combine_true_trains_last_reply_and_stop_token_only(tok):
    sp = SpecialIds.of(tok)
    out = encode_conversation(CONV, tok, True)
    targets = [t for t in out["labels"] if t != IGNORE_INDEX]
    assert targets == piece(tok, "成都的特色美食是担担面。") + [sp.user]  # no "\n" after <|assistant|>
    assert sp.assistant not in targets


def test_combine_false_trains_every_reply_with_newline_and_next_role(tok):
    sp = SpecialIds.of(tok)
    out = encode_conversation(CONV, tok, False)
    targets = [t for t in out["labels"] if t != IGNORE_INDEX]
    first = piece(tok, "\n成都属于四川省。") + [sp.user]
    last = piece(tok, "\n成都的特色美食是担担面。") + [sp.user]
    assert targets == first + last
    assert sum(t == sp.assistant for t in targets) == 0


def test_truncation_cuts_from_the_start_of_the_sum(tok):
    full = encode_conversation(CONV, tok, False)
    cut = encode_conversation(CONV, tok, False, max_length=10)
    assert cut["input_ids"] == full["input_ids"][:10] and cut["labels"] == full["labels"][:10]


def test_zero_label_samples_are_counted_and_dropped_or_raised(tok, tmp_path):
    rows = [{"messages": CONV, "line": 1}, {"messages": CONV[:3], "line": 2}]
    long_prompt = [{"role": "user", "content": "很长的问题" * 50}, {"role": "assistant", "content": "好。"}]
    rows.append({"messages": long_prompt, "line": 3})
    ds, report = build_train_dataset(rows, tok, True, 40, 20)
    assert report.max_length == sequence_max_length(40, 20) == 61
    assert len(ds) == 2 and report.empty == [3] and report.truncated == 1
    assert report.label_tokens_lost > 0
    assert all(any(t != IGNORE_INDEX for t in lab) for lab in ds["labels"])
    with pytest.raises(DataError, match="train:3: no reply token survives the cut to 61 tokens"):
        build_train_dataset(rows, tok, True, 40, 20, on_empty="raise")


def test_num_proc_gives_the_same_dataset(tok, demo_dir):
    rows = read_jsonl(demo_dir / "dev.jsonl")
    a, _ = build_train_dataset(rows, tok, False, 256, 64)
    b, _ = build_train_dataset(rows, tok, False, 256, 64, num_proc=2)
    assert a["input_ids"] == b["input_ids"] and a["labels"] == b["labels"]


def test_eval_prompts_never_contain_the_answer(tok):
    sp = SpecialIds.of(tok)
    (ex,) = eval_examples(CONV, tok, True, 512, 512)
    assert ex["reference"] == "成都的特色美食是担担面。"
    assert ex["prompt_ids"][-1] == sp.assistant
    assert ex["prompt_ids"] == tok.apply_chat_template(CONV[:4], add_generation_prompt=True, tokenize=True, return_dict=False)
    assert "担担面" not in tok.decode(ex["prompt_ids"])
    per_turn = eval_examples(CONV, tok, False, 512, 512)
    assert [e["reference"] for e in per_turn] == ["成都属于四川省。", "成都的特色美食是担担面。"]


def test_eval_limits_cut_prompt_and_reference(tok):
    sp = SpecialIds.of(tok)
    (ex,) = eval_examples(CONV, tok, True, 5, 3)
    assert len(ex["prompt_ids"]) == 6 and ex["prompt_ids"][-1] == sp.assistant
    assert len(ex["reference_ids"]) == 3


def test_tools_none_from_schema_unification_is_removed(tok):
    msgs = [{"role": "system", "content": "", "tools": None}, {"role": "user", "content": "你好", "tools": None},
            {"role": "assistant", "content": "你好。", "tools": None}]
    assert [clean_message(m) for m in msgs][1] == {"role": "user", "content": "你好"}
    assert encode_conversation(msgs, tok)["input_ids"][-1] == SpecialIds.of(tok).user


def test_read_jsonl_reports_every_bad_line(tmp_path):
    p = tmp_path / "train.jsonl"
    good = json.dumps({"messages": CONV}, ensure_ascii=False)
    p.write_text("\n".join([good, "{not json", json.dumps({"messages": [{"role": "tool", "content": "x"}]}), "",
                            json.dumps({"messages": CONV[:2]}, ensure_ascii=False)]) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_jsonl(p)
    text = "\n".join(e.value.problems)
    assert "train.jsonl:2: invalid JSON" in text
    assert "train.jsonl:3: messages[0].role 'tool' is not one of system, user, assistant, observation (GLM-4 calls a tool result \"observation\")" in text
    assert "train.jsonl:5: no assistant reply" in text


def test_demo_data_is_valid_and_has_system_and_observation_turns(demo_dir):
    rows = read_jsonl(demo_dir / "train.jsonl")
    roles = [m["role"] for r in rows for m in r["messages"]]
    assert len(rows) == 600 and {"system", "user", "assistant", "observation"} <= set(roles)
    assert sum(len([m for m in r["messages"] if m["role"] == "user"]) > 1 for r in rows) > 100


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_long_samples_warn_nothing_and_leave_the_tokenizer_unchanged(tok):
    # gluekit cuts and reports long samples itself: transformers' "Token indices sequence length is
    # longer than ..." warning is not made, and no tokenizer state is written to silence it
    short = copy.deepcopy(tok)
    short.model_max_length = 16  # every sample below is longer
    records = _Records()
    with transformers_logs(logging.WARNING, handler=records):
        ds, report = build_train_dataset([{"messages": CONV}], short, True, 512, 512)
        encode_conversation(CONV, short, False)
        eval_examples(CONV, short, False, 512, 512)
        assert min(report.lengths) > 16 and records.messages == []
        assert short.deprecation_warnings == {}
        short(short.decode(ds[0]["input_ids"]), add_special_tokens=False)  # the tokenizer's own call does warn
    assert [m.split(" (")[0] for m in records.messages] == [
        "Token indices sequence length is longer than the specified maximum sequence length for this model"]
    assert short.deprecation_warnings == {"sequence-length-is-longer-than-the-specified-maximum": True}


def test_eval_subset_and_counting_eval_samples(demo_dir):
    from gluekit.data import count_eval_samples, eval_subset, read_jsonl

    picked = eval_subset(67, 20, seed=42)
    assert len(picked) == 20 == len(set(picked)) and picked == sorted(picked) and max(picked) < 67
    assert picked == eval_subset(67, 20, seed=42) != eval_subset(67, 20, seed=43)  # fixed by the seed
    assert eval_subset(67, None, 42) == eval_subset(67, 67, 42) == eval_subset(67, 99, 42) == list(range(67))
    dev = read_jsonl(demo_dir / "dev.jsonl")
    # what build_eval_rows and build_train_dataset give, counted without a tokenizer
    assert (count_eval_samples(dev, combine=False), count_eval_samples(dev, combine=True)) == (67, 40)
    assert count_eval_samples(dev, combine=False, generates=False) == 40
