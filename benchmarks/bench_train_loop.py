"""Training throughput: gluekit's Trainer path vs a minimal hand-written torch + PEFT loop.

Both sides train the tiny GLM with LoRA (configs/tiny.yaml) on the demo data for the same number of
optimizer steps, from the same seed, on the same batches: the hand-written loop iterates the
gluekit Trainer's own ``get_train_dataloader()`` (same sampler order, same ``PadCollator``), builds
AdamW with the Trainer's hyper-parameters, the same linear schedule and clips gradients at
``max_grad_norm`` like the Trainer. Evaluation and saving are off and logging is sparse (once at
the end), so the timing is the training step itself plus what the Trainer wraps around it.

Runs alternate (gluekit, loop, gluekit, loop ...); each run starts from a freshly loaded model,
its setup (model load, LoRA wrap, building the Trainer) outside the timed part. A separate,
untimed run with ``logging_steps=1`` records gluekit's loss at every step; ``same_output`` says
whether it equals the hand-written loop's loss at every step (1e-4 relative).

Two rows: against the minimal loop (the model's own loss, logits at every position), and against
the same loop computing the loss from label-position logits as gluekit does (``gluekit.loss``), so
that the second ratio is the Trainer's overhead alone.
"""
from __future__ import annotations

import math
import statistics
import tempfile
import time

from .common import ROOT, Row, bench_threads, timed_threads

TINY_YAML = ROOT / "configs" / "tiny.yaml"
LOSS_RTOL = 1e-4  # relative; float32 sums taken in a different order stay well inside it
EXTRA: dict = {}




def _config(steps: int, out_dir: str, logging_steps: int):
    from gluekit.config import load_config
    from gluekit.tiny import DEMO_DIR

    return load_config(TINY_YAML, {
        "training_args.max_steps": steps, "training_args.eval_strategy": "no",
        "training_args.save_strategy": "no", "training_args.logging_steps": logging_steps,
        "training_args.output_dir": out_dir, "data_config.test_file": None,
        "training_args.log_level": "error",  # tiny.yaml's "info" prints each run's set-up; no effect on training
    }, data_dir=DEMO_DIR)


def _with_lora(model, cfg, seed: int):
    """``model`` wrapped with tiny.yaml's LoRA, seeded right before the wrap as ``gluekit.train.train`` does."""
    from transformers import set_seed

    from gluekit.lora import apply_peft

    set_seed(seed)
    model, _ = apply_peft(model, cfg.peft_config_object(), verbose=False)
    return model


def _fresh_model(cfg, seed: int):
    """The tiny GLM with LoRA, initialised exactly as ``gluekit.train.train`` does (``seed``: the Trainer's)."""
    from gluekit.models import load_model

    return _with_lora(load_model(), cfg, seed)


def _gluekit_trainer(cfg, tok, data):
    """gluekit's Trainer as ``gluekit.train.train`` builds it: model, Trainer arguments, seed and LoRA, Trainer."""
    from gluekit.models import load_model
    from gluekit.trainer import build_trainer, trainer_arguments

    model = load_model()
    args = trainer_arguments(cfg, model)
    return build_trainer(cfg, _with_lora(model, cfg, args.seed), tok, data, print_logs=False, args=args)


def _loop_optimizer(model, args):
    """AdamW as the Trainer builds it: weight decay off for biases and norms, same lr/betas/eps/fused."""
    import torch
    from transformers.trainer_pt_utils import get_parameter_names

    # the Trainer's rule (Trainer.get_decay_parameter_names in transformers 5)
    no_decay = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    decay = set(get_parameter_names(model, [torch.nn.LayerNorm], no_decay))
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in params if n in decay], "weight_decay": args.weight_decay},
              {"params": [p for n, p in params if n not in decay], "weight_decay": 0.0}]
    fused = str(args.optim).endswith("fused")
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                             eps=args.adam_epsilon, fused=fused or None)


def hand_loop(model, batches, args, steps: int, label_only: bool = False) -> list[float]:
    """The minimal loop: forward, backward, clip, AdamW step, linear-decay schedule. Returns losses.

    ``label_only``: the loss from label-position logits (gluekit.loss), the arithmetic gluekit's
    Trainer does, so that the two differ only by what the Trainer wraps around the step.
    """
    import torch

    from gluekit.loss import label_only_inputs

    opt = _loop_optimizer(model, args)
    # 1) linear decay from lr to 0 over `steps`, no warm-up (the Trainer's default schedule)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (steps - s) / steps))
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    losses = []
    for step, batch in enumerate(batches):
        if step == steps:
            break
        loss = model(**(label_only_inputs(batch) if label_only else batch)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    if len(losses) < steps:  # one pass over the batches only: the Trainer reshuffles between epochs
        raise ValueError(f"hand_loop: {steps} steps asked, the batches gave {len(losses)}")
    return [float(x) for x in losses]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _profile_trainer(cfg, tok, data) -> list[str]:
    """Top functions (own time) of one gluekit run: what the Trainer spends beside the model."""
    import cProfile
    import io
    import pstats

    trainer = _gluekit_trainer(cfg, tok, data)
    prof = cProfile.Profile()
    prof.runcall(trainer.train)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    return [line.strip() for line in buf.getvalue().splitlines() if line.strip()][-13:]


def run(quick: bool) -> list[Row]:
    import logging

    import torch

    from gluekit.models import load_tokenizer
    from gluekit.quiet import transformers_logs
    from gluekit.tiny import DEMO_DIR
    from gluekit.train import prepare_data

    steps, repeats = (5, 1) if quick else (72, 4)  # one epoch of the demo (75 batches): the loop iterates it once
    with transformers_logs(logging.ERROR), timed_threads():
        with tempfile.TemporaryDirectory() as tmp:
            cfg = _config(steps, tmp, logging_steps=steps)
            tok = load_tokenizer()
            data = prepare_data(cfg, DEMO_DIR, tok)
            # correctness: gluekit's loss at every step (logging_steps=1, untimed) vs the loop's
            cfg1 = _config(steps, tmp, logging_steps=1)
            tr1 = _gluekit_trainer(cfg1, tok, data)
            tr1.train()
            args = tr1.args  # what the Trainer really used (build_trainer adds CPU settings)
            glue_losses = [h["loss"] for h in tr1.state.log_history if "loss" in h]
            loop_losses = hand_loop(_fresh_model(cfg, args.seed), tr1.get_train_dataloader(), args, steps)
            same = len(glue_losses) == len(loop_losses) == steps and all(
                math.isclose(a, b, rel_tol=LOSS_RTOL) for a, b in zip(glue_losses, loop_losses))
            worst = max((abs(a - b) / max(abs(b), 1e-12) for a, b in zip(glue_losses, loop_losses)), default=0.0)

            # timing: alternate, each run on a fresh model; setup outside the clock
            times: dict[str, list[float]] = {"gluekit": [], "loop": [], "loop_label_only": []}
            mean_losses: dict[str, list[float]] = {k: [] for k in times}
            for _ in range(repeats + 1):  # the first round warms up and is dropped
                trainer = _gluekit_trainer(cfg, tok, data)
                times["gluekit"].append(_timed(trainer.train))
                mean_losses["gluekit"].append(next(h["loss"] for h in trainer.state.log_history if "loss" in h))
                for name in ("loop", "loop_label_only"):
                    model, dl = _fresh_model(cfg, args.seed), trainer.get_train_dataloader()
                    out: list[float] = []
                    times[name].append(_timed(lambda: out.extend(
                        hand_loop(model, dl, args, steps, label_only=name == "loop_label_only"))))
                    mean_losses[name].append(sum(out) / len(out))
            med = {k: statistics.median(v[1:] if len(v) > 1 else v) for k, v in times.items()}
            runs_agree = all(math.isclose(glue, other, rel_tol=LOSS_RTOL)
                             for glue, *others in zip(*mean_losses.values()) for other in others)
            profile = [] if quick else _profile_trainer(cfg, tok, data)

    base, glue, same_math = steps / med["loop"], steps / med["gluekit"], steps / med["loop_label_only"]
    ratio, overhead = glue / base, glue / same_math
    EXTRA["notes"] = (f"train_loop: torch threads {bench_threads()} for all sides (GLUEKIT_BENCH_THREADS); "
                      f"{repeats} alternating runs after one warm-up round, medians.")
    name = f"LoRA training, tiny GLM, {steps} steps of batch {args.per_device_train_batch_size}"
    details = {"seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
               "glue_losses": [round(x, 6) for x in glue_losses], "loop_losses": [round(x, 6) for x in loop_losses],
               "profile_gluekit_tottime": profile}
    return [
        Row(name=name, baseline="hand-written torch + PEFT loop (same batches, AdamW, schedule, clipping)",
            metric="train steps/s", baseline_value=base, gluekit_value=glue, ratio=ratio, target=">= 0.95x",
            met=ratio >= 0.95, same_output=same and runs_agree,
            notes=(f"losses equal step by step within {LOSS_RTOL:g} relative (worst {worst:.1e}); mean loss of "
                   f"every timed run equal too: {runs_agree}. The loop takes the model's own loss (logits at every "
                   "position); gluekit computes logits only where a label is predicted (gluekit.loss)."),
            details=details),
        Row(name=name + ", Trainer overhead alone", baseline="the same hand-written loop with label-only logits",
            metric="train steps/s", baseline_value=same_math, gluekit_value=glue, ratio=overhead, target=">= 0.95x",
            met=overhead >= 0.95, same_output=runs_agree,
            notes=(f"same arithmetic on both sides: what the Trainer wraps around a step costs "
                   f"{1000 * (med['gluekit'] - med['loop_label_only']) / steps:+.1f} ms per step, including its "
                   "start-up (accelerate's free_memory() runs gc.collect() once per train(); see the profile)."),
            details={"seconds": details["seconds"]}),
    ]
