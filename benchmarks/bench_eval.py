"""Generation evaluation over the demo dev set: gluekit's ``generate_replies`` vs the reference's path.

The reference (GLM-4's finetune_demo) evaluates with ``Seq2SeqTrainer.predict`` and
``predict_with_generate=True``: batches of ``per_device_eval_batch_size`` prompts in file order,
padded by ``DataCollatorForSeq2Seq(padding="longest")`` on the tokenizer's side (GLM-4's tokenizer
pads on the LEFT, so does the tiny one), greedy generation that stops at any GLM-4 stop token
(``<|endoftext|>``, ``<|user|>``, ``<|observation|>``) or after ``max_new_tokens``, and its
``prediction_step`` cuts the prompt off the generated rows. Here it runs at batch 4. gluekit runs
the way its Trainer calls it: ``per_device_eval_batch_size`` from configs/tiny.yaml.

Two models: the tiny GLM after a short LoRA fine-tune (its replies are real sentences that end
with a stop token) and the untrained tiny GLM (random weights: it never stops before
``max_new_tokens``). ``same_output``: identical greedy replies for every prompt.
"""
from __future__ import annotations

import copy
import statistics
import tempfile
import time

from .common import ROOT, Row, bench_threads, timed_threads

TINY_YAML = ROOT / "configs" / "tiny.yaml"
REFERENCE_BATCH = 4
EXTRA: dict = {}




def load_setup(quick: bool):
    """(config, tokenizer, eval rows): the dev set cut with tiny.yaml's length limits."""
    from gluekit.config import load_config
    from gluekit.data import build_eval_rows, read_jsonl
    from gluekit.models import load_tokenizer
    from gluekit.tiny import DEMO_DIR

    cfg = load_config(TINY_YAML, data_dir=DEMO_DIR)
    tok = load_tokenizer()
    rows = build_eval_rows(read_jsonl(DEMO_DIR / cfg.data_config.val_file), tok, cfg.combine,
                           cfg.max_input_length, cfg.max_output_length)
    if quick:  # a handful of prompts, long (tool list) and short ones
        rows = sorted(rows, key=lambda r: len(r["prompt_ids"]))
        rows = rows[:4] + rows[-3:] + rows[len(rows) // 2:len(rows) // 2 + 3]
    return cfg, tok, rows


def fine_tuned_model(steps: int):
    """The tiny GLM with a LoRA adapter trained ``steps`` steps on the demo data (in a temp folder)."""
    from gluekit.config import load_config
    from gluekit.tiny import DEMO_DIR
    from gluekit.train import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(TINY_YAML, {
            "training_args.max_steps": steps, "training_args.eval_strategy": "no",
            "training_args.save_strategy": "no", "training_args.logging_steps": steps,
            "training_args.log_level": "error", "training_args.output_dir": tmp, "data_config.test_file": None,
        }, data_dir=DEMO_DIR)
        model = train(cfg, DEMO_DIR, print_logs=False).trainer.model
    return model.eval()


def generation_config(cfg, model):
    """What gluekit's Trainer hands to ``evaluate_rows``: tiny.yaml's settings over the model's own."""
    return cfg.training_arguments(model.generation_config).generation_config


def gluekit_replies(model, tok, rows, cfg, gen=None) -> list[str]:
    """``generate_replies`` as gluekit's Trainer calls it (its eval batch size and generation config)."""
    from gluekit.evaluate import generate_replies

    return generate_replies(model, tok, [r["prompt_ids"] for r in rows], gen or generation_config(cfg, model),
                            batch_size=cfg.training_args["per_device_eval_batch_size"])


class ReferencePredictor:
    """``Seq2SeqTrainer.predict`` set up as GLM-4's finetune_demo evaluates (see the module docstring)."""

    def __init__(self, model, tok, rows, cfg, out_dir: str, batch_size: int = REFERENCE_BATCH):
        import datasets
        from transformers import DataCollatorForSeq2Seq, GenerationConfig, Seq2SeqTrainer, Seq2SeqTrainingArguments

        from gluekit.tokens import SpecialIds

        class CutPromptTrainer(Seq2SeqTrainer):
            """The reference's ``prediction_step``: no labels in eval batches, prompt cut off the output."""

            def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
                width = inputs["input_ids"].shape[1]
                inputs.pop("labels", None)  # the collator adds labels=None; eval batches carry none
                loss, tokens, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs)
                return loss, tokens[:, width:], labels

        self.tok = tok
        self.model = model
        sp = SpecialIds.of(tok)
        gen = GenerationConfig(max_new_tokens=cfg.generation_config().max_new_tokens, do_sample=False,
                               eos_token_id=sp.stop, pad_token_id=tok.pad_token_id)
        args = Seq2SeqTrainingArguments(
            output_dir=out_dir, per_device_eval_batch_size=batch_size, predict_with_generate=True,
            generation_config=gen, report_to="none", disable_tqdm=True, dataloader_pin_memory=False,
            log_level="error")
        saved = model.generation_config  # Seq2SeqTrainer replaces the model's; give it back after each call
        self.data = datasets.Dataset.from_dict({"input_ids": [r["prompt_ids"] for r in rows]})
        self.trainer = CutPromptTrainer(
            model=model, args=args, processing_class=tok,
            data_collator=DataCollatorForSeq2Seq(tok, padding="longest", return_tensors="pt"))
        self.gen, self.saved = copy.deepcopy(model.generation_config), saved
        model.generation_config = saved

    def __call__(self) -> list[str]:
        self.model.generation_config = self.gen
        try:
            pred = self.trainer.predict(self.data).predictions
        finally:
            self.model.generation_config = self.saved
        pred[pred == -100] = self.tok.pad_token_id  # the eval loop pads between batches with -100
        # The reference decodes without skip_special_tokens (its text keeps the stop and pad
        # tokens); both sides here drop special tokens, so only reply text is compared.
        return [self.tok.decode(p, skip_special_tokens=True).strip() for p in pred]


def _alternate(fns: dict, repeats: int) -> tuple[dict[str, float], dict[str, list[float]], dict[str, list]]:
    """Median seconds of each callable run in turns after one warm-up round; also every time and output."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs: dict[str, list] = {k: [] for k in fns}
    for i in range(repeats + 1):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            outs[k].append(fn())
            if i:
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, times, outs


def compare(name: str, model, tok, rows, cfg, repeats: int, tmp: str, why: str = "") -> Row:
    # built once, as the Trainer does: making training arguments again would reset accelerate's state
    gen = generation_config(cfg, model)
    ref = ReferencePredictor(model, tok, rows, cfg, tmp)
    med, times, outs = _alternate({"reference": ref, "gluekit": lambda: gluekit_replies(model, tok, rows, cfg, gen)},
                                  repeats)
    stable = all(o == outs["reference"][0] for o in outs["reference"]) and all(o == outs["gluekit"][0] for o in outs["gluekit"])
    a, b = outs["reference"][0], outs["gluekit"][0]
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    reply_tokens = [len(tok(x, add_special_tokens=False)["input_ids"]) for x in b]
    base, glue = len(rows) / med["reference"], len(rows) / med["gluekit"]
    ratio = glue / base
    return Row(
        name=name, baseline=f"Seq2SeqTrainer.predict, predict_with_generate, batch {REFERENCE_BATCH}, left padding",
        metric="prompts/s", baseline_value=base, gluekit_value=glue, ratio=ratio, target=">= 3x", met=ratio >= 3,
        same_output=stable and not differ and len(a) == len(b) == len(rows),
        notes=(f"{len(rows)} prompts, max_new_tokens {gen.max_new_tokens}, gluekit batch "
               f"{cfg.training_args['per_device_eval_batch_size']}; replies of {min(reply_tokens)}-{max(reply_tokens)} tokens "
               f"(mean {sum(reply_tokens) / len(reply_tokens):.1f}); {len(differ)} replies differ.{why}"),
        details={"seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
                 "differ": [{"row": i, "reference": a[i], "gluekit": b[i]} for i in differ],
                 "sample": [{"reference": rows[i]["reference"], "gluekit": b[i]} for i in range(min(3, len(rows)))]},
    )


def run(quick: bool) -> list[Row]:
    import logging

    import torch

    from gluekit.models import load_model
    from gluekit.quiet import transformers_logs

    train_steps, repeats = (30, 1) if quick else (200, 5)
    with transformers_logs(logging.ERROR), timed_threads():
        cfg, tok, rows = load_setup(quick)
        with tempfile.TemporaryDirectory() as tmp:
            tuned = fine_tuned_model(train_steps)
            out = [compare(f"generation eval, tiny GLM + LoRA after {train_steps} steps (replies stop)",
                           tuned, tok, rows, cfg, repeats, tmp)]
            out.append(compare("generation eval, untrained tiny GLM (never stops early)",
                               load_model().eval(), tok, rows, cfg, repeats, tmp,
                               why=" No row stops early, so both sides run every row for all max_new_tokens steps: "
                                   "the output layer's work (rows x steps x vocabulary) is the same, and gluekit saves "
                                   "only sequential steps, padding and the shared prompt prefix."))
    EXTRA["notes"] = (f"eval: torch threads {bench_threads()} for both sides (GLUEKIT_BENCH_THREADS); {repeats} alternating "
                      "runs after one warm-up round, medians; replies compared with special tokens dropped.")
    return out
