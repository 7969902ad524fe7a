"""gluekit.generate: chat, before/after comparison, loading and merging an adapter (tiny GLM, CPU)."""
from pathlib import Path

import pytest
import torch

from gluekit.data import read_jsonl
from gluekit.generate import chat, compare, load_with_adapter, merge_adapter


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A LoRA adapter with non-zero B (a fresh one changes nothing), saved like train() saves it."""
    from peft import LoraConfig

    from gluekit.lora import apply_peft
    from gluekit.models import load_model, load_tokenizer

    torch.manual_seed(0)
    net, _ = apply_peft(load_model(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
                        verbose=False)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("adapter")
    net.save_pretrained(str(out))
    load_tokenizer().save_pretrained(str(out))
    return out


def test_load_with_adapter_gives_an_eval_mode_peft_model(adapter):
    from peft import PeftModel

    base, tok = load_with_adapter()
    tuned, _ = load_with_adapter(adapter=adapter)
    assert not isinstance(base, PeftModel) and isinstance(tuned, PeftModel)
    assert not base.training and not tuned.training
    ids = torch.tensor([tok.encode("你好")])
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, tuned(input_ids=ids).logits)  # the adapter is applied


def test_chat_takes_a_string_or_messages(adapter):
    model, tok = load_with_adapter(adapter=adapter)
    reply = chat(model, tok, "成都有什么好吃的?", max_new_tokens=6)
    assert isinstance(reply, str)
    assert chat(model, tok, [{"role": "user", "content": "成都有什么好吃的?"}], max_new_tokens=6) == reply
    assert len(tok.encode(reply, add_special_tokens=False)) <= 6


def test_compare_disables_the_adapter_for_the_before_column(adapter, demo_dir):
    tuned, tok = load_with_adapter(adapter=adapter)
    base, _ = load_with_adapter()
    rows = read_jsonl(demo_dir / "dev.jsonl")[:3]
    same_model = compare(tuned, tuned, tok, rows, combine=True, max_new_tokens=6)
    two_models = compare(base, tuned, tok, rows, combine=True, max_new_tokens=6)
    assert same_model == two_models  # "before" from the disabled adapter = the base model's reply
    assert len(same_model) >= 3 and set(same_model[0]) == {"prompt", "reference", "before", "after", "before_ok", "after_ok"}
    assert any(r["before"] != r["after"] for r in same_model)  # the adapter changes some reply
    assert all(r["after_ok"] == (r["after"] == r["reference"]) for r in same_model)


def test_merged_model_computes_what_base_plus_adapter_computes(adapter, tmp_path):
    from gluekit.models import load_model

    tuned, tok = load_with_adapter(adapter=adapter)
    out = merge_adapter(adapter, tmp_path / "merged")
    assert out == tmp_path / "merged" and (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    merged = load_model(str(out)).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())  # a plain model
    ids = torch.tensor([tok.encode("成都有什么好吃的?")])
    with torch.no_grad():
        diff = (merged(input_ids=ids).logits - tuned(input_ids=ids).logits).abs().max().item()
    assert diff < 1e-4


MERGE_PEAK_CHILD = r'''
import gc, json, sys, tempfile
from pathlib import Path
from gluekit.generate import merge_adapter

def kib(key):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key))

adapter, base = sys.argv[1], sys.argv[2]
merge_adapter(adapter, tempfile.mkdtemp(), base)  # warm-up: imports and one-time set-up
gc.collect()
before = kib("VmRSS:")
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
lines = []
merge_adapter(adapter, tempfile.mkdtemp(), base, report=lines.append)
print(json.dumps({"rise_bytes": (kib("VmHWM:") - before) * 1024, "report": lines}))
'''


def test_a_merge_holds_one_copy_of_the_weights(adapter, tmp_path):
    """Peak RSS rise of a merge on the CPU, in a fresh process, against the checkpoint's weights: one
    loaded copy (no float32 upcast, no second model) plus what save_pretrained holds while it
    writes (measured 1.7x for the tiny GLM: 7.6 MB resident after load and merge, 16.3 MB at the
    peak of the save, 9.8 MB of weights). Two full copies plus the save would pass 2.5x. glibc maps
    every block over 128 KiB (MALLOC_MMAP_THRESHOLD_), so freed memory leaves RSS and the peak is
    the live bytes."""
    import json
    import os
    import subprocess
    import sys

    from gluekit.models import model_path

    weights = (Path(model_path(None)) / "model.safetensors").stat().st_size
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", MERGE_PEAK_CHILD, str(adapter), model_path(None)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["report"] == ["merge runs on the CPU (float32)"]
    assert 0.5 * weights < out["rise_bytes"] < 2.0 * weights, (out, weights)


def test_a_merged_model_keeps_the_checkpoints_dtype(adapter, tmp_path):
    """A bf16 checkpoint merged on the CPU stays bf16 (loaded with dtype="auto", not upcast to float32)."""
    from safetensors import safe_open

    from gluekit.models import load_model, load_tokenizer

    base = tmp_path / "bf16"
    load_model(dtype=torch.bfloat16).save_pretrained(str(base))
    load_tokenizer().save_pretrained(str(base))
    lines = []
    out = merge_adapter(adapter, tmp_path / "merged", str(base), report=lines.append)
    assert lines == ["merge runs on the CPU (bf16)"]
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"BF16"}
    assert (out / "model.safetensors").stat().st_size < 1.05 * (base / "model.safetensors").stat().st_size
