"""gluekit.quantization and the `quantization:` key: validation (always), 4-bit training on the tiny GLM
(only where bitsandbytes is installed: it is in the `qlora` extra, not in `test`)."""
import json
import os

import pytest
import torch

from gluekit import quantization as q
from gluekit.config import load_config
from gluekit.errors import ConfigError

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "gluekit", "configs", "tiny.yaml")
needs_bnb = pytest.mark.skipif(not q.available(), reason=f"bitsandbytes is not installed ({q.INSTALL_HINT})")


def problems(overrides, check_machine=False):
    with pytest.raises(ConfigError) as e:
        load_config(TINY, overrides, check_machine=check_machine)
    return str(e.value)


# ------------------------------------------------------------------ the key and its checks

def test_override_turns_it_on_and_defaults_follow_the_card():
    cfg = load_config(TINY, {"quantization.load_in_4bit": True})
    assert cfg.quantization == {"load_in_4bit": True}
    assert cfg.to_dict()["quantization"] == {"load_in_4bit": True}
    assert q.resolve(cfg.quantization) == {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                           "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "float32"}
    assert q.resolve(cfg.quantization, bf16=True)["bnb_4bit_compute_dtype"] == "bfloat16"
    assert q.resolve({"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"})["bnb_4bit_quant_type"] == "fp4"  # user wins
    assert q.resolve({"load_in_4bit": False}) is None and load_config(TINY).quantization is None


def test_messages_name_the_field():
    text = problems({"quantization.load_in_4bit": "yes"})
    assert "`quantization.load_in_4bit`: must be true or false, got 'yes' (a string)." in text
    text = problems({"quantization.bnb_4bit_quant_typ": "nf4"})
    assert "`quantization.bnb_4bit_quant_typ`: unknown key. Did you mean `bnb_4bit_quant_type`?" in text
    text = problems({"quantization.load_in_4bit": True, "quantization.bnb_4bit_compute_dtype": "fp16"})
    assert "`quantization.bnb_4bit_compute_dtype`: must be one of float32, bfloat16, float16, got 'fp16'." in text
    text = problems({"quantization.load_in_4bit": True, "quantization.bnb_4bit_quant_type": "nf8"})
    assert "`quantization.bnb_4bit_quant_type`: must be nf4 or fp4, got 'nf8'." in text
    text = problems({"quantization.load_in_4bit": True, "quantization.load_in_8bit": True})
    assert "`quantization`: load_in_4bit and load_in_8bit are both true." in text
    assert "`quantization`: must be a mapping of BitsAndBytesConfig fields, got 4 (an integer)." in problems({"quantization": 4})
    text = problems({"quantization.load_in_4bit": True, "peft_config": None})
    assert "`quantization`: a quantized base cannot be trained without an adapter" in text


def test_missing_bitsandbytes_gives_the_pip_command(monkeypatch):
    monkeypatch.setattr(q, "available", lambda: False)
    message = 'needs the bitsandbytes package, which is not installed. Install it: pip install -e ".[qlora]" (or pip install bitsandbytes).'
    assert f"`quantization`: {message}" in problems({"quantization.load_in_4bit": True}, check_machine=True)
    cfg = load_config(TINY, {"quantization.load_in_4bit": True})  # planning on another machine: a note
    assert f"`quantization` {message}" in cfg.notes
    with pytest.raises(ImportError, match=r"pip install -e \"\.\[qlora\]\""):
        from gluekit.models import load_model

        load_model(quantization={"load_in_4bit": True})


def test_without_bitsandbytes_the_plain_path_runs(monkeypatch):
    """Hide the module: a plain load and the config checks still work."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    assert not q.available()
    from gluekit.models import load_model

    net = load_model(quantization={"load_in_4bit": False})
    assert not q.is_quantized(net) and net.dtype == torch.float32
    assert load_config(TINY).quantization is None


def test_nf4_bytes_formula():
    assert q.nf4_bytes(128 * 128, double_quant=False) == 8192 + 4 * 256 + 64
    assert q.nf4_bytes(128 * 128) == 8192 + 256 + 4 + 1024 + 4 + 64


# ------------------------------------------------------------------ 4-bit runs (bitsandbytes installed)

class Crash(Exception):
    pass


class CrashAtStep:
    """Stops the run during optimizer step N, as a kill would (nothing more written)."""

    def __new__(cls, step):
        from transformers import TrainerCallback

        class _C(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, **kw):
                if state.global_step + 1 == step:
                    raise Crash(step)
        return _C()


def _train(out, overrides=(), **kw):
    from gluekit.tiny import DEMO_DIR
    from gluekit.train import train

    args = dict(output_dir=str(out), max_steps=4, eval_strategy="no", save_steps=2, logging_steps=1, print_logs=False)
    args.update(kw)
    return train(TINY, DEMO_DIR, overrides=["quantization.load_in_4bit=true", *overrides], **args)


def _adapter(folder):
    from safetensors.torch import load_file

    return load_file(os.path.join(folder, "adapter_model.safetensors"))


@pytest.fixture(scope="session")
def qrun(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("q4") / "run")


@needs_bnb
def test_4bit_run_learns_saves_settings_and_counts_bytes(qrun):
    from gluekit.loss import supports_label_only_logits
    from gluekit.models import base_model

    base = base_model(qrun.trainer.model)
    assert q.is_quantized(base) and supports_label_only_logits(qrun.trainer.model)  # label-only logits in use
    losses = [r["loss"] for r in qrun.trainer.state.log_history if "loss" in r]
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.5
    saved = json.loads((qrun.adapter_dir / q.SETTINGS_FILE).read_text())
    assert saved == {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
                     "bnb_4bit_compute_dtype": "float32"}
    assert q.saved_settings(qrun.adapter_dir) == saved
    linears = [m for m in base.modules() if type(m).__module__.startswith("bitsandbytes")]
    assert len(linears) == 12  # q, k, v, o, gate_up, down in 2 layers; embeddings and lm_head stay fp32
    assert q.quantized_bytes(base) == sum(q.nf4_bytes(m.in_features * m.out_features) for m in linears)


@needs_bnb
def test_4bit_with_checkpointing_and_packing(tmp_path, qrun):
    r = _train(tmp_path / "gp", ["packing=true"], max_steps=2, gradient_checkpointing=True)
    losses = [x["loss"] for x in r.trainer.state.log_history if "loss" in x]
    ref = [x["loss"] for x in qrun.trainer.state.log_history if "loss" in x][:2]
    assert r.trainer.model.is_gradient_checkpointing
    assert losses == pytest.approx(ref, rel=1e-3)  # same batches: packing and checkpointing change no loss


@needs_bnb
def test_4bit_resume_after_crash_equals_uninterrupted(tmp_path, qrun):
    out = tmp_path / "resume"
    with pytest.raises(Crash):
        _train(out, callbacks=[CrashAtStep(3)])
    assert (out / "checkpoint-2").is_dir() and not (out / "adapter").exists()
    r = _train(out, resume=True)
    assert r.resumed_from.name == "checkpoint-2"
    a, b = _adapter(r.adapter_dir), _adapter(qrun.adapter_dir)
    assert a.keys() == b.keys()
    # bit-identical with one thread; with several, the 4-bit kernels' sums may round in another order
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"4-bit resume: largest adapter difference {worst:.2e}")
    assert worst <= 1e-6, worst


@needs_bnb
def test_merge_dequantizes_and_matches_the_adapter_on_4bit(qrun, tmp_path, demo_dir):
    from gluekit.data import build_eval_rows, read_jsonl
    from gluekit.evaluate import generate_replies
    from gluekit.generate import load_with_adapter, merge_adapter
    from gluekit.models import load_model

    out = merge_adapter(qrun.adapter_dir, tmp_path / "merged")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    tuned, tok = load_with_adapter(None, qrun.adapter_dir)  # the adapter on the 4-bit base, settings read back
    merged = load_model(out)
    assert q.is_quantized(tuned) and not q.is_quantized(merged)
    assert not any(type(m).__module__.startswith("bitsandbytes") for m in merged.modules())
    rows = build_eval_rows(read_jsonl(os.path.join(demo_dir, "dev.jsonl"))[:8], tok, False, 256, 64)
    prompts = [r["prompt_ids"] for r in rows]
    assert generate_replies(tuned, tok, prompts, max_new_tokens=16) == generate_replies(merged, tok, prompts, max_new_tokens=16)
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        diff = (tuned(input_ids=ids).logits - merged(input_ids=ids).logits).abs().max().item()
    assert diff < 1e-3  # float rounding of the merge only; the 4-bit rounding is in both


def test_cli_command_silences_bitsandbytes_import_line(caplog, monkeypatch):
    """The line bitsandbytes logs at import on AVX512_BF16 CPUs (peft imports it) is silenced for the command
    only; the logger's level is restored afterwards."""
    import logging

    from gluekit import cli

    line = "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'."
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")

    def command(args):
        logger.warning(line)
        return 0

    monkeypatch.setattr(cli, "cmd_configs", command)
    with caplog.at_level(logging.WARNING):
        assert cli.main(["configs"]) == 0
        assert line not in caplog.text
        logger.warning(line)
        assert line in caplog.text
