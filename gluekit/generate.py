"""Use a fine-tuned adapter: load base + adapter, chat, compare before/after, merge.

Chat prompts are built with the tokenizer's own chat template (``add_generation_prompt``), and
generation stops at any GLM-4 stop token (``<|endoftext|>``, ``<|user|>``, ``<|observation|>``).
Models load on :func:`gluekit.device.accelerator` (the GPU when there is one, in bf16) unless a
``device`` is given, and generation sends its inputs to the model's own device.
"""
from __future__ import annotations

from pathlib import Path

from .data import build_eval_rows
from .evaluate import generate_replies
from .models import load_model, load_tokenizer, model_path
from .quantization import saved_settings
from .quiet import quiet_peft_wrap, quiet_progress


def load_with_adapter(model: str | None = None, adapter: str | Path | None = None, trust_remote_code: bool = False,
                      device=None, dtype=None):
    """(model, tokenizer): the base model, with a saved LoRA adapter on top if ``adapter`` is given.

    Loaded straight onto ``device`` (default :func:`gluekit.device.accelerator`) in ``dtype``
    (default: that device's, bf16 on a GPU); the adapter's weights join the layers they adapt.
    An adapter trained on a 4-bit/8-bit base (``gluekit_quantization.json`` beside it) gets the base
    quantized with exactly the training's settings.
    """
    tokenizer = load_tokenizer(model, trust_remote_code)
    net = load_model(model, trust_remote_code, dtype=dtype, device=device, quantization=saved_settings(adapter))
    if adapter is not None:
        from peft import PeftModel

        with quiet_peft_wrap():
            net = PeftModel.from_pretrained(net, str(adapter))
    net.eval()
    return net, tokenizer


def chat(model, tokenizer, messages: list[dict] | str, max_new_tokens: int = 128) -> str:
    """One greedy assistant reply to ``messages`` (or to a single user string)."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    prompt = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
    return generate_replies(model, tokenizer, [prompt], max_new_tokens=max_new_tokens)[0]


def compare(base, tuned, tokenizer, rows: list[dict], combine: bool, max_input_length: int = 512,
            max_output_length: int = 512, max_new_tokens: int = 64, batch_size: int = 16) -> list[dict]:
    """Before/after table: for each eval prompt of ``rows``, the base and the tuned reply and the reference.

    ``base`` may be the same PeftModel as ``tuned``: its adapter is disabled for the "before" column.
    """
    ev = build_eval_rows(rows, tokenizer, combine, max_input_length, max_output_length)
    prompts = [r["prompt_ids"] for r in ev]
    if base is tuned and hasattr(tuned, "disable_adapter"):
        with tuned.disable_adapter():
            before = generate_replies(tuned, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    else:
        before = generate_replies(base, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    after = generate_replies(tuned, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    out = []
    for r, b, a in zip(ev, before, after):
        question = tokenizer.decode(r["prompt_ids"], skip_special_tokens=True).strip().splitlines()[-1]
        out.append({"prompt": question, "reference": r["reference"], "before": b, "after": a,
                    "before_ok": b == r["reference"], "after_ok": a == r["reference"]})
    return out


MERGE_SHARD_SIZE = "2GB"
"""Largest safetensors file :func:`merge_adapter` writes: from a GPU, one file's tensors are copied
to host memory while it is written, so this bounds the host memory a merge needs."""


def merge_adapter(adapter: str | Path, out_dir: str | Path, model: str | None = None,
                  trust_remote_code: bool = False, *, device=None, max_shard_size: str | int = MERGE_SHARD_SIZE,
                  report=None) -> Path:
    """Fold the LoRA update into the base weights (W + scaling * B @ A) and save a plain model.

    Memory: ONE full copy of the base weights, on ``device`` (default
    :func:`gluekit.device.accelerator`: the GPU when there is one) in the checkpoint's own dtype
    (``dtype="auto"``: bf16 for GLM-4-9B, about 17.5 GiB; the merged model keeps that dtype), plus
    the adapter. PEFT adds each layer's update into its weight in place, one weight-sized fp32
    delta at a time; nothing else is copied. Saving writes files of at most ``max_shard_size``:
    from a GPU each file's tensors are copied to host memory while it is written (host peak: about
    one file, 2 GB by default). On the CPU the save's serialisation buffers come on top of the
    loaded copy: the tiny GLM's merge peaks at 1.7x its weights' bytes (measured, peak RSS; see
    tests/test_generate.py), under the two copies of a load-then-copy merge. The caller should
    hold no other copy of the model on that device meanwhile (notebook 12 releases the trained
    model first). ``report``: called with one line saying where the merge ran (e.g. ``print``).
    An adapter trained on a quantized base (QLoRA) is merged by :func:`merge_quantized_adapter`.
    """
    from .device import where

    settings = saved_settings(adapter)
    if settings:
        return merge_quantized_adapter(adapter, out_dir, model, trust_remote_code, settings, device=device,
                                       max_shard_size=max_shard_size)

    net, tokenizer = load_with_adapter(model, adapter, trust_remote_code, device=device, dtype="auto")
    if report is not None:
        report(f"merge {where(net)}")
    merged = net.merge_and_unload()  # in place: the base layers get W + scaling * B @ A, the LoRA layers go
    del net
    out = Path(out_dir)
    with quiet_progress():
        merged.save_pretrained(str(out), max_shard_size=max_shard_size)  # safetensors by default
    tokenizer.save_pretrained(str(out))
    return out


def merge_quantized_adapter(adapter: str | Path, out_dir: str | Path, model: str | None = None,
                            trust_remote_code: bool = False, settings: dict | None = None, *, device=None,
                            max_shard_size: str | int = MERGE_SHARD_SIZE) -> Path:
    """Merge a QLoRA adapter: load the base quantized with the training's ``settings`` (default: those saved
    beside the adapter), dequantize it (each 4-bit weight becomes the rounded W_q the adapter was trained
    against), fold the adapter in (W_q + scaling * B @ A) and save a plain model in the load dtype.

    The merged model computes what the adapter on the 4-bit base computes (up to float rounding of the
    merge); it differs from the original unquantized weights by the 4-bit rounding of W. Merging on the
    4-bit base instead (PEFT's ``merge_and_unload`` there) would re-quantize W_q + BA and change replies.
    Memory: one full copy of the model in the load dtype.
    """
    from peft import PeftModel

    from .models import default_dtype
    from .quantization import quiet_bitsandbytes

    settings = settings or saved_settings(adapter)
    tokenizer = load_tokenizer(model, trust_remote_code)
    base = load_model(model, trust_remote_code, quantization=settings, device=device)
    dtype = default_dtype()
    with quiet_bitsandbytes():
        base = base.dequantize(dtype=dtype).to(dtype)
    with quiet_peft_wrap():
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.config.__dict__.pop("quantization_config", None)  # a plain model now
    out = Path(out_dir)
    with quiet_progress():
        merged.save_pretrained(str(out), max_shard_size=max_shard_size)
    tokenizer.save_pretrained(str(out))
    return out


__all__ = ["load_with_adapter", "chat", "compare", "MERGE_SHARD_SIZE", "merge_adapter", "merge_quantized_adapter",
           "model_path"]
