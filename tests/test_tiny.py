import filecmp

from gluekit import tiny
from gluekit.demo import write_demo


def test_demo_data_rebuilds_byte_for_byte(tmp_path):
    paths = write_demo(tmp_path)
    for name in ("train", "dev"):
        assert filecmp.cmp(paths[name], tiny.DEMO_DIR / f"{name}.jsonl", shallow=False)


def test_dev_conversations_do_not_appear_in_train():
    train = set((tiny.DEMO_DIR / "train.jsonl").read_text(encoding="utf-8").splitlines())
    dev = (tiny.DEMO_DIR / "dev.jsonl").read_text(encoding="utf-8").splitlines()
    assert not train & set(dev)


def test_tokenizer_rebuilds_byte_for_byte(tmp_path):
    tiny.build_tokenizer(tmp_path)
    for f in tiny.TOKENIZER_DIR.iterdir():
        assert filecmp.cmp(f, tmp_path / f.name, shallow=False), f.name


def test_tiny_model_is_native_glm_with_glm4_tokens(tok):
    from gluekit.models import load_model

    model = load_model()
    assert type(model).__name__ == "GlmForCausalLM" and model.config.model_type == "glm"
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"} <= names
    assert tok.convert_ids_to_tokens(list(range(len(tok) - 10, len(tok)))) == list(tiny.SPECIAL_TOKENS)
    assert model.config.eos_token_id == tok.convert_tokens_to_ids(["<|endoftext|>", "<|user|>", "<|observation|>"])
    n = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n < 4_000_000


def test_chinese_takes_about_one_and_a_half_characters_per_token(tok):
    text = "成都的特色美食是担担面。今天天气很好,适合出门。"
    assert 1.2 < len(text) / len(tok.encode(text, add_special_tokens=False)) < 3
