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
