"""A finished run's curves as a PNG: ``gluekit plot RUN_DIR --out FILE.png``.

Reads the run's ``trainer_state.json`` (:func:`gluekit.train.training_log`) and draws three panels
against the optimizer step: the training loss (and ``eval_loss`` when it was logged), the learning
rate, and the evaluation metrics (ROUGE / BLEU-4 / exact match, x100). Matplotlib's Agg canvas is
used directly, so no display is needed and pyplot's global state is left alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .errors import GluekitError

# keys of an evaluation record that are bookkeeping, not a score
_EVAL_BOOKKEEPING = ("eval_loss", "eval_runtime", "eval_samples", "eval_samples_per_second",
                     "eval_steps_per_second", "eval_model_preparation_time")

TITLES = ("training loss", "learning rate", "evaluation metrics")


def series(log_history: Iterable[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged key (``loss``, ``learning_rate``, ``eval_exact_match`` ...)."""
    pts = [(e["step"], float(e[key])) for e in log_history
           if "step" in e and isinstance(e.get(key), (int, float)) and not isinstance(e.get(key), bool)]
    return [s for s, _ in pts], [v for _, v in pts]


def eval_metrics(log_history: Iterable[dict]) -> list[str]:
    """Names of the evaluation scores in the log, in first-seen order (``eval_loss`` and timings left out)."""
    names: list[str] = []
    for e in log_history:
        for k, v in e.items():
            if (k.startswith("eval_") and k not in _EVAL_BOOKKEEPING and k not in names
                    and isinstance(v, (int, float)) and not isinstance(v, bool)):
                names.append(k)
    return names


def plot_log_history(log_history: list[dict], title: str | None = None):
    """A ``matplotlib.figure.Figure`` with three panels (see :data:`TITLES`) drawn from ``log_history``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    log_history = list(log_history)
    loss = series(log_history, "loss")
    lr = series(log_history, "learning_rate")
    eval_loss = series(log_history, "eval_loss")
    metrics = eval_metrics(log_history)
    if not (loss[0] or lr[0] or eval_loss[0] or metrics):
        raise GluekitError("the log history holds no loss, learning rate or evaluation record to plot "
                           "(was logging_strategy 'no', or did the run stop before its first log step?).")

    fig = Figure(figsize=(14, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_lr, ax_eval = fig.subplots(1, 3)

    def empty(ax, what):
        ax.text(0.5, 0.5, f"no {what} logged", ha="center", va="center", transform=ax.transAxes, color="gray")

    if loss[0]:
        ax_loss.plot(*loss, marker="o", markersize=3, label="train loss")
    if eval_loss[0]:
        ax_loss.plot(*eval_loss, marker="s", markersize=4, label="eval loss")
    if loss[0] or eval_loss[0]:
        ax_loss.legend(loc="best", fontsize="small")
    else:
        empty(ax_loss, "loss")
    ax_loss.set_ylabel("loss")

    if lr[0]:
        ax_lr.plot(*lr, marker="o", markersize=3, color="tab:green")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    else:
        empty(ax_lr, "learning rate")
    ax_lr.set_ylabel("learning rate")

    for name in metrics:
        ax_eval.plot(*series(log_history, name), marker="o", markersize=4, label=name.removeprefix("eval_"))
    if metrics:
        ax_eval.legend(loc="best", fontsize="small")
    else:
        empty(ax_eval, "evaluation metric")
    ax_eval.set_ylabel("score (x100)")

    for ax, t in zip((ax_loss, ax_lr, ax_eval), TITLES):
        ax.set_title(t)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_run(run_dir: str | Path):
    """The Figure of :func:`plot_log_history` for a run folder (its ``trainer_state.json``)."""
    from .train import training_log

    run_dir = Path(run_dir)
    return plot_log_history(training_log(run_dir), title=f"run {run_dir.resolve().name}")


def save_run_plot(run_dir: str | Path, out: str | Path, dpi: int = 100) -> Path:
    """Draw :func:`plot_run` into the PNG ``out`` (parent folders created); returns its path."""
    out = Path(out)
    fig = plot_run(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=dpi)
    return out


__all__ = ["TITLES", "series", "eval_metrics", "plot_log_history", "plot_run", "save_run_plot"]
