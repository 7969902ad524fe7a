"""Plan a run before it starts: steps, epochs, when it logs / evaluates / saves, and the LR at every step.

Nothing here re-derives the Trainer's decisions: the log/eval/save steps come from running
transformers' own ``DefaultFlowCallback`` over the steps, and the learning rates from the
scheduler that ``Trainer.create_scheduler`` builds (``transformers.get_scheduler``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass
class Plan:
    num_samples: int
    num_devices: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    global_batch_size: int
    """Samples per optimizer step = per-device batch x devices x gradient accumulation."""
    steps_per_epoch: int
    max_steps: int
    epochs: float
    """Passes over the training data that ``max_steps`` makes (may be fractional)."""
    log_steps: list[int] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    save_steps: list[int] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    """``learning_rates[k - 1]`` is the LR the optimizer uses at step k."""
    warmup_steps: int = 0
    scheduler: str = "linear"

    @property
    def checkpoints(self) -> list[str]:
        return [f"checkpoint-{s}" for s in self.save_steps]

    def lr_at(self, step: int) -> float:
        """LR used by optimizer step ``step`` (1-based)."""
        return self.learning_rates[step - 1]

    def summary(self) -> str:
        def short(xs):
            return ", ".join(map(str, xs)) if len(xs) <= 8 else f"{', '.join(map(str, xs[:3]))}, ..., {xs[-1]} ({len(xs)} in all)"

        return "\n".join([
            f"samples {self.num_samples}, devices {self.num_devices}, global batch {self.global_batch_size} "
            f"(= {self.per_device_train_batch_size} per device x {self.num_devices} x {self.gradient_accumulation_steps} accumulation)",
            f"steps per epoch {self.steps_per_epoch}, max_steps {self.max_steps}, epochs {self.epochs:.2f}",
            f"log at: {short(self.log_steps)}",
            f"evaluate at: {short(self.eval_steps) or 'never'}",
            f"save: {short(self.checkpoints) or 'never'}",
            f"learning rate ({self.scheduler}, warm-up {self.warmup_steps}): step 1 {self.lr_at(1):.3g}, "
            f"step {self.max_steps // 2} {self.lr_at(max(1, self.max_steps // 2)):.3g}, step {self.max_steps} {self.lr_at(self.max_steps):.3g}",
        ])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["checkpoints"] = self.checkpoints
        return d


def learning_rates(args, max_steps: int) -> list[float]:
    """The LR of every optimizer step, from the scheduler the Trainer itself would create."""
    import types

    import torch
    from transformers import Trainer

    # 1) a throwaway optimizer holding the configured LR (the scheduler scales it)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    # 2) Trainer.create_scheduler, called unbound on a stand-in holding only what it reads
    sched = Trainer.create_scheduler(types.SimpleNamespace(args=args, lr_scheduler=None), max_steps, opt)
    out = []
    for _ in range(max_steps):
        out.append(opt.param_groups[0]["lr"])  # LR in force during this step
        opt.step()
        sched.step()
    return out


def make_plan(args, num_samples: int, num_devices: int = 1) -> Plan:
    """Plan from ``Seq2SeqTrainingArguments``, the number of training samples and of data-parallel devices."""
    from transformers import TrainerControl, TrainerState
    from transformers.trainer_callback import DefaultFlowCallback

    per_device = args.per_device_train_batch_size
    accum = args.gradient_accumulation_steps
    # batches each device sees per epoch (the sampler splits the data, drop_last=False)
    batches = math.ceil(num_samples / (per_device * num_devices))
    steps_per_epoch = max(batches // accum + int(batches % accum > 0), 1)
    max_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)

    # Replay the Trainer's own step-end decisions.
    state = TrainerState()
    state.max_steps = max_steps
    state.compute_steps(args, max_steps)
    flow = DefaultFlowCallback()
    logs, evals, saves = [], [], []
    for step in range(1, max_steps + 1):
        state.global_step = step
        control = TrainerControl()
        flow.on_step_end(args, state, control)
        if step % steps_per_epoch == 0 or step == max_steps:  # the epoch (or training) ends here
            state.epoch = step / steps_per_epoch
            flow.on_epoch_end(args, state, control)
        logs += [step] if control.should_log else []
        evals += [step] if control.should_evaluate else []
        saves += [step] if control.should_save else []
    return Plan(
        num_samples=num_samples, num_devices=num_devices, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accum, global_batch_size=per_device * num_devices * accum,
        steps_per_epoch=steps_per_epoch, max_steps=max_steps, epochs=max_steps / steps_per_epoch,
        log_steps=logs, eval_steps=evals, save_steps=saves,
        learning_rates=learning_rates(args, max_steps), warmup_steps=args.get_warmup_steps(max_steps),
        scheduler=str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
    )


# ---------------------------------------------------------------- evaluation: what it scores, how long, when it may stop

DEFAULT_SECONDS_PER_REPLY = 4.0
"""Seconds to generate one eval reply when the plan is not told (``gluekit plan --eval-seconds``):
GLM-4-9B fine-tuned with GLM-4's own script in GLM-4 issue 488, whose evaluation of 500 dev
samples took 33 minutes (3.96 s each; 100 samples in 7 minutes with ``combine: True``). A rate
reported by a user, not measured here: measure yours as ``eval_runtime / eval_samples`` of a first
evaluation (gluekit logs both) and pass it in."""


@dataclass
class EvalPlan:
    """What the evaluations of a run score, about how long generation takes, and when early stopping may stop it."""

    generates: bool
    """``predict_with_generate``: generated replies scored by ROUGE/BLEU, or the loss on the reply tokens."""
    val_samples: int
    """Eval samples in val_file (replies with generation, conversations for the loss)."""
    per_evaluation: int
    """Samples each evaluation during training scores (``eval_samples`` of them, or all)."""
    eval_steps: list[int]
    test_samples: int
    """Samples of test_file, scored once after training."""
    num_devices: int = 1
    seconds_per_sample: float | None = None
    """Generation only: seconds per reply on one device (``DEFAULT_SECONDS_PER_REPLY`` unless given)."""
    seconds_source: str = ""
    patience: int | None = None
    """``early_stopping.patience``; None without early stopping."""
    threshold: float = 0.0
    metric: str | None = None
    greater_is_better: bool | None = None
    load_best: bool = False
    save_steps: list[int] = field(default_factory=list)

    def seconds(self, samples: int) -> float | None:
        """Generation time for ``samples`` replies, shared by the devices (None for the loss)."""
        if not self.generates or self.seconds_per_sample is None:
            return None
        return self.seconds_per_sample * math.ceil(samples / self.num_devices)

    @property
    def earliest_stop(self) -> int | None:
        """The first step early stopping can stop at: the evaluation after ``patience`` ones without improvement."""
        if self.patience is None or len(self.eval_steps) <= self.patience:
            return None
        return self.eval_steps[self.patience]

    def summary(self) -> str:
        n_eval = len(self.eval_steps)
        if self.generates:
            what = f"generation (ROUGE/BLEU of generated replies), {self.val_samples} replies in val_file"
        else:
            what = f"the loss on the reply tokens (eval_loss, no generation), {self.val_samples} samples in val_file"
        subset = (f"a fixed random {self.per_evaluation} of them (eval_samples)" if self.per_evaluation < self.val_samples
                  else "all of them")
        lines = [f"evaluation: {what}; {n_eval} evaluation(s) during training score {subset}; "
                 f"after training the test_file's {self.test_samples} once, whole"]
        during, end = self.per_evaluation * n_eval, self.test_samples
        if self.generates and self.seconds_per_sample is not None:
            full = self.seconds(self.val_samples) * n_eval + self.seconds(end)
            lines.append(f"  generation time: {during} + {end} replies at {self.seconds_per_sample:g} s per reply "
                         f"({self.seconds_source}) over {self.num_devices} device(s): about "
                         f"{_minutes(self.seconds(self.per_evaluation) * n_eval)} during training + {_minutes(self.seconds(end))} at the end"
                         + (f" (every reply at every evaluation: {_minutes(full)})" if self.per_evaluation < self.val_samples else ""))
        elif not self.generates:
            lines.append(f"  cost: one forward pass per sample ({during} during training, {end} at the end), no generation")
        if self.patience is not None:
            better = "higher" if self.greater_is_better else "lower"
            when = (f"the earliest stop is step {self.earliest_stop} (evaluation {self.patience + 1} of {n_eval}), "
                    "or any evaluation after it" if self.earliest_stop else f"it cannot stop early: only {n_eval} evaluation(s)")
            kept = ("load_best_model_at_end: the best evaluation's checkpoint is kept and loaded at the end, and becomes the adapter"
                    if self.load_best else "the adapter is the last step's (load_best_model_at_end is off)")
            lines.append(f"early stopping: after {self.patience} evaluation(s) in a row without {self.metric} improving by more than "
                         f"{self.threshold:g} ({better} is better); {when}; {kept}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["earliest_stop"] = self.earliest_stop
        return d


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def plan_evaluation(cfg, plan: Plan, val_samples: int, test_samples: int,
                    seconds_per_sample: float | None = None) -> EvalPlan:
    """The evaluation part of a plan: ``cfg`` (a FinetuneConfig: ``predict_with_generate``,
    ``eval_samples``, ``early_stopping``), ``plan`` (its eval and save steps), the eval samples of
    val_file and test_file (:func:`gluekit.data.count_eval_samples`), and the seconds one reply
    takes to generate (default :data:`DEFAULT_SECONDS_PER_REPLY`)."""
    args = cfg.training_arguments(portable=True)
    source = "given" if seconds_per_sample is not None else "default: GLM-4-9B in GLM-4 issue 488"
    es = cfg.early_stopping or {}
    metric = args.metric_for_best_model
    if metric is not None and not metric.startswith("eval_"):
        metric = f"eval_{metric}"
    return EvalPlan(
        generates=cfg.generates, val_samples=val_samples, eval_steps=list(plan.eval_steps),
        per_evaluation=min(val_samples, cfg.eval_samples or val_samples), test_samples=test_samples,
        num_devices=plan.num_devices,
        seconds_per_sample=(DEFAULT_SECONDS_PER_REPLY if seconds_per_sample is None else seconds_per_sample) if cfg.generates else None,
        seconds_source=source if cfg.generates else "", patience=es.get("patience"), threshold=float(es.get("threshold", 0.0)),
        metric=metric, greater_is_better=args.greater_is_better, load_best=bool(args.load_best_model_at_end),
        save_steps=list(plan.save_steps),
    )
