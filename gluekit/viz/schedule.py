"""The shape of a run in pictures: when it logs, evaluates and saves, and its learning rate at every step.

Every picture is drawn from a :class:`gluekit.plan.Plan`, whose steps and learning rates come from
transformers' own ``DefaultFlowCallback`` and scheduler; nothing here re-derives them.
"""
from __future__ import annotations

import html
import math
from typing import Iterable

from ..plan import Plan, make_plan

# one colour per kind of event, the same in every picture
COLORS = {"log": "tab:blue", "evaluate": "tab:orange", "save": "tab:green", "lr": "tab:purple"}


def plan_with(cfg, num_samples: int, num_devices: int = 1, **training_args) -> Plan:
    """``make_plan`` for ``cfg`` (a :class:`gluekit.config.FinetuneConfig`) with some ``training_args`` changed.

    The arguments are built ``portable`` (without bf16, deepspeed and the other flags that need this
    machine's hardware): a plan for a GPU run can be drawn on a laptop.

    >>> plan_with(load_config("configs/lora.yaml"), 600, max_steps=1200).checkpoints
    ['checkpoint-500', 'checkpoint-1000', 'checkpoint-1200']
    """
    return make_plan(cfg.training_arguments(portable=True, **training_args), num_samples, num_devices)


def timeline_rows(plan: Plan) -> list[tuple[str, list[int]]]:
    """The event rows a timeline shows, top to bottom: (label, steps)."""
    return [("log", list(plan.log_steps)), ("evaluate", list(plan.eval_steps)), ("save", list(plan.save_steps))]


def epoch_boundaries(plan: Plan) -> list[int]:
    """Steps after which an epoch ends (whole epochs only, up to ``max_steps``)."""
    return list(range(plan.steps_per_epoch, plan.max_steps + 1, plan.steps_per_epoch))


def plot_timeline(plan: Plan, ax=None, title: str | None = None):
    """A step axis from 0 to ``max_steps`` with a row of marks for log, evaluate and save; dotted lines end epochs.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 2.6))
    else:
        fig = ax.figure
    rows = timeline_rows(plan)
    for i, (label, steps) in enumerate(rows):
        y = len(rows) - 1 - i
        many = len(steps) > 60  # hundreds of log steps: thin ticks instead of markers
        if steps:
            ax.vlines(steps, y - 0.3, y + 0.3, color=COLORS[label], linewidth=0.6 if many else 2.0,
                      label=f"{label} ({len(steps)})")
        else:
            ax.text(plan.max_steps / 2, y, f"no {label}", ha="center", va="center", color="gray")
    bounds = epoch_boundaries(plan)
    for b in bounds:
        ax.axvline(b, color="gray", linestyle=":", linewidth=1)
    if 0 < len(bounds) <= 20:  # name the epochs when there are few enough to read
        for k, b in enumerate(bounds, start=1):
            ax.text(b, len(rows) - 0.45, f"epoch {k}", ha="right", va="bottom", fontsize="x-small", color="gray")
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)])
    ax.set_xlim(0, plan.max_steps * 1.01)
    ax.set_ylim(-0.6, len(rows) - 0.2)
    ax.set_xlabel("optimizer step (dotted lines: end of an epoch)")
    ax.set_title(title or f"max_steps {plan.max_steps}, {plan.steps_per_epoch} steps per epoch, {plan.epochs:.2f} epochs")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def plot_learning_rate(plan: Plan, logged: Iterable[tuple[int, float]] | None = None, ax=None,
                       title: str | None = None, mark_saves: bool = True):
    """The LR the optimizer uses at every step (``plan.learning_rates``), with optional logged points.

    ``logged``: (step, learning_rate) pairs, e.g. from a run's ``log_history``. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.4))
    else:
        fig = ax.figure
    steps = list(range(1, plan.max_steps + 1))
    ax.plot(steps, plan.learning_rates, color=COLORS["lr"], label=f"planned ({plan.scheduler}, warm-up {plan.warmup_steps})")
    if logged:
        pts = list(logged)
        ax.scatter([s for s, _ in pts], [lr for _, lr in pts], color="black", s=14, zorder=3, label="logged by the Trainer")
    if mark_saves and plan.save_steps:
        ax.vlines(plan.save_steps, 0, [plan.lr_at(s) for s in plan.save_steps], color=COLORS["save"],
                  linestyle="--", linewidth=1, label="checkpoint saved")
    peak = max(plan.learning_rates)  # the configured learning_rate (warm-up ramps up to it)
    ax.axhline(peak, color="gray", linestyle=":", linewidth=1, label=f"learning_rate = {peak:g}")
    ax.set_xlim(0, plan.max_steps * 1.02)
    ax.set_ylim(0, peak * 1.1 if peak > 0 else 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_title(title or f"Learning rate over {plan.max_steps} steps")
    ax.legend(fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def plan_html(plan: Plan) -> str:
    """``plan.summary()`` as preformatted HTML (what the explorer shows)."""
    return f"<pre>{html.escape(plan.summary())}</pre>"


def schedule_explorer(cfg, num_samples: int, *, max_steps: int | None = None, save_steps: int | None = None,
                      per_device_train_batch_size: int | None = None, num_devices: int = 1):
    """Sliders for max_steps, save_steps and the per-device batch size; below them the plan they make.

    Starts from ``cfg``'s values unless given. Every change re-runs :func:`plan_with` (the Trainer's own
    logic), so what it shows is what a run with those values does. Returns an ``ipywidgets.VBox``
    whose last child is the ``HTML`` holding :func:`plan_html`.
    """
    import ipywidgets as w

    # Start values: the arguments the config builds (transformers' defaults where it says nothing).
    # max_steps -1 trains by epochs: start from the step count the plan works out. A save_steps
    # below 1 is a fraction of max_steps (transformers' rule): start from the steps it means.
    args = cfg.training_arguments(portable=True)
    if max_steps is None:
        max_steps = args.max_steps if args.max_steps > 0 else make_plan(args, num_samples, num_devices).max_steps
    if save_steps is None:
        save_steps = int(args.save_steps) if args.save_steps >= 1 else math.ceil(args.save_steps * max_steps)
    start = {"max_steps": max_steps, "save_steps": save_steps,
             "per_device_train_batch_size": per_device_train_batch_size or args.per_device_train_batch_size}
    style = {"description_width": "190px"}
    layout = w.Layout(width="560px")
    sliders = {
        "max_steps": w.IntSlider(value=start["max_steps"], min=50, max=max(6000, start["max_steps"]), step=50,
                                 description="max_steps", style=style, layout=layout, continuous_update=False),
        "save_steps": w.IntSlider(value=start["save_steps"], min=50, max=max(3000, start["save_steps"]), step=50,
                                  description="save_steps", style=style, layout=layout, continuous_update=False),
        "per_device_train_batch_size": w.SelectionSlider(
            options=sorted({1, 2, 4, 8, 16, 32, start["per_device_train_batch_size"]}),
            value=start["per_device_train_batch_size"], description="per_device_train_batch_size",
            style=style, layout=layout, continuous_update=False),
    }
    out = w.HTML()

    def update(_=None):
        values = {k: s.value for k, s in sliders.items()}
        out.value = plan_html(plan_with(cfg, num_samples, num_devices, **values))

    for s in sliders.values():
        s.observe(update, names="value")
    update()
    return w.VBox([*sliders.values(), out])


__all__ = ["COLORS", "plan_with", "timeline_rows", "epoch_boundaries", "plot_timeline", "plot_learning_rate",
           "plan_html", "schedule_explorer"]
