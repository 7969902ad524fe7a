"""A run's curves: loss, learning rate and evaluation scores from ``log_history``, after the run or live.

* :func:`plot_history` draws three panels against the optimizer step: the training loss (and
  ``eval_loss`` when it was logged), the learning rate, and the evaluation scores (ROUGE / BLEU-4 /
  exact match, x100). The CLI's ``gluekit plot RUN_DIR`` (:func:`save_run_plot`) and the notebooks
  draw with it.
* :class:`LiveLossPlot` is a ``transformers.TrainerCallback``: pass it to ``gluekit.train.train(...,
  callbacks=[LiveLossPlot()])`` and one figure under the cell is redrawn at every log record
  (training loss on the left, an evaluation metric on the right), with the same panels' drawing.
  A resumed run starts with the records already in its checkpoint.

Figures are :class:`PngFigure`: built without pyplot (no global state, never shown twice), drawn by
matplotlib's Agg canvas, so no display is needed, and shown as a PNG when a notebook cell returns one.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from transformers import TrainerCallback

from ..errors import GluekitError

TITLES = ("training loss", "learning rate", "evaluation metrics")
# keys of an evaluation record that are bookkeeping, not a score
_EVAL_BOOKKEEPING = ("eval_loss", "eval_runtime", "eval_samples", "eval_samples_per_second",
                     "eval_steps_per_second", "eval_model_preparation_time")


# ---------------------------------------------------------------- log_history -> series

def series(log_history: Iterable[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged number: ``loss`` (the periodic records, not the final
    ``train_loss``), ``learning_rate``, ``eval_exact_match`` ..."""
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


# ---------------------------------------------------------------- the figure and its panels

class PngFigure(Figure):
    """A matplotlib ``Figure`` on an Agg canvas that a notebook shows as a PNG (``_repr_png_``), whatever the backend."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)

    def png(self, dpi: int = 100) -> bytes:
        """The current drawing as PNG bytes."""
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")


def _draw_loss(ax, loss, eval_loss=((), ()), title: str = TITLES[0]) -> None:
    """Training loss (and eval loss) per step; a log scale when the loss falls more than 20-fold."""
    if loss[0]:
        ax.plot(*loss, marker="o", markersize=3, color="tab:blue", label="train loss")
    if eval_loss[0]:
        ax.plot(*eval_loss, marker="s", markersize=4, color="tab:red", label="eval loss")
    values = list(loss[1]) + list(eval_loss[1])
    if eval_loss[0]:
        ax.legend(loc="best", fontsize="small")
    elif not values:
        _note(ax, "no loss logged")
    ax.set_ylabel("loss")
    if values and min(values) > 0 and max(values) / min(values) > 20:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("loss (log scale)")
    ax.set_title(title)


def _draw_learning_rate(ax, lr) -> None:
    if lr[0]:
        ax.plot(*lr, marker="o", markersize=3, color="tab:green")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    else:
        _note(ax, "no learning rate logged")
    ax.set_ylabel("learning rate")
    ax.set_title(TITLES[1])


def _draw_metrics(ax, curves: dict[str, tuple[list[int], list[float]]], title: str = TITLES[2],
                  empty: str = "no evaluation metric logged", legend: bool = True) -> None:
    """Scores (0..100) per step, one line per metric (named in a legend, or by ``title``)."""
    drawn = {name: pts for name, pts in curves.items() if pts[0]}
    for name, pts in drawn.items():
        ax.plot(*pts, marker="o", markersize=4, label=name.removeprefix("eval_"))
    if drawn:
        ax.set_ylim(-3, 103)
        if legend:
            ax.legend(loc="best", fontsize="small")
    else:
        _note(ax, empty)
    ax.set_ylabel("score (x100)")
    ax.set_title(title)


def _steps_axis(ax, last_step: int | None) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if last_step:
        ax.set_xlim(0, last_step * 1.03)
    ax.grid(alpha=0.3)


def plot_history(log_history: Iterable[dict], metrics: Iterable[str] | None = None, title: str | None = None) -> PngFigure:
    """A :class:`PngFigure` with three panels (see :data:`TITLES`) drawn from a run's ``log_history``.

    ``log_history``: ``gluekit.checkpoints.training_log(output_dir)`` or ``trainer.state.log_history``.
    ``metrics``: the evaluation scores to draw (default: every one in the log). In a notebook, end
    the cell with the call: the figure shows as a PNG.
    """
    log_history = list(log_history)
    loss, eval_loss, lr = (series(log_history, k) for k in ("loss", "eval_loss", "learning_rate"))
    names = eval_metrics(log_history) if metrics is None else list(metrics)
    if not (loss[0] or lr[0] or eval_loss[0] or eval_metrics(log_history)):
        raise GluekitError("the log history holds no loss, learning rate or evaluation record to plot "
                           "(was logging_strategy 'no', or did the run stop before its first log step?).")
    fig = PngFigure(figsize=(14, 3.8), layout="constrained")
    ax_loss, ax_lr, ax_eval = fig.subplots(1, 3)
    _draw_loss(ax_loss, loss, eval_loss)
    _draw_learning_rate(ax_lr, lr)
    _draw_metrics(ax_eval, {name: series(log_history, name) for name in names})
    last = max((e["step"] for e in log_history if isinstance(e.get("step"), int)), default=None)
    for ax in (ax_loss, ax_lr, ax_eval):
        _steps_axis(ax, last)
    if title:
        fig.suptitle(title)
    return fig


def plot_run(run_dir: str | Path) -> PngFigure:
    """:func:`plot_history` of a run folder (its ``trainer_state.json``), titled with the folder's name."""
    from ..checkpoints import training_log

    run_dir = Path(run_dir)
    return plot_history(training_log(run_dir), title=f"run {run_dir.resolve().name}")


def save_run_plot(run_dir: str | Path, out: str | Path, dpi: int = 100) -> Path:
    """Draw :func:`plot_run` into the PNG ``out`` (parent folders created); returns its path."""
    out = Path(out)
    fig = plot_run(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(fig.png(dpi))
    return out


# ---------------------------------------------------------------- live plot

def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveLossPlot(TrainerCallback):
    """Redraw one figure at every log record: training loss (left) and ``metric`` (right).

    ``display``: True shows the figure under the running cell and updates it in place (IPython's
    ``display(..., display_id=True)``); False only keeps the figure (tests, scripts); None (default)
    decides by whether an IPython kernel is running. ``every`` redraws at every n-th log record.
    After training, ``figure`` holds the last drawing and ``steps``/``losses``/``eval_steps``/
    ``eval_values`` the plotted data.
    """

    def __init__(self, metric: str = "eval_exact_match", every: int = 1, display: bool | None = None,
                 figsize: tuple[float, float] = (10, 3.4), title: str | None = None):
        self.metric = metric
        self.every = max(1, int(every))
        self.display = display
        self.figsize = figsize
        self.title = title
        self.figure: PngFigure | None = None
        self.redraws = 0
        self._records = 0
        self._handle = None
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.eval_steps: list[int] = []
        self.eval_values: list[float] = []
        self.max_steps: int | None = None
        self.resumed_at: int | None = None
        self.evaluates = True  # False when the run's eval_strategy is "no": the right panel says so

    # -- Trainer events
    def on_train_begin(self, args, state, control, **kwargs):
        self.max_steps = state.max_steps or args.max_steps
        strategy = getattr(args, "eval_strategy", "steps")
        self.evaluates = str(getattr(strategy, "value", strategy)) != "no"
        # a resumed run: start from the records restored from the checkpoint
        self.steps, self.losses = series(state.log_history, "loss")
        self.eval_steps, self.eval_values = series(state.log_history, self.metric)
        self.resumed_at = state.global_step or None
        self.figure = PngFigure(figsize=self.figsize)
        self.ax_loss, self.ax_eval = self.figure.subplots(1, 2)
        self._draw()
        if _in_notebook() if self.display is None else self.display:
            from IPython.display import Image, display

            # a PNG made here, so the picture does not depend on the notebook's matplotlib backend
            self._handle = display(Image(data=self.png()), display_id=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or self.figure is None:
            return
        new = False
        if "loss" in logs:
            self.steps.append(state.global_step)
            self.losses.append(float(logs["loss"]))
            new = True
        if self.metric in logs:
            self.eval_steps.append(state.global_step)
            self.eval_values.append(float(logs[self.metric]))
            new = True
        if new:
            self._records += 1
            if self._records % self.every == 0:
                self._refresh()

    def on_train_end(self, args, state, control, **kwargs):
        if self.figure is not None:
            self._refresh()

    # -- drawing
    def _draw(self):
        self.ax_loss.clear()
        self.ax_eval.clear()
        done = self.steps[-1] if self.steps else 0
        _draw_loss(self.ax_loss, (self.steps, self.losses),
                   title=f"training loss (step {done} of {self.max_steps})" if self.max_steps else TITLES[0])
        _draw_metrics(self.ax_eval, {self.metric: (self.eval_steps, self.eval_values)}, title=self.metric,
                      empty="waiting for the first evaluation" if self.evaluates else "no evaluation in this run\n(eval_strategy: no)",
                      legend=False)
        for ax in (self.ax_loss, self.ax_eval):
            _steps_axis(ax, self.max_steps)
        if self.resumed_at:
            for ax in (self.ax_loss, self.ax_eval):
                ax.axvline(self.resumed_at, color="gray", linestyle="--", linewidth=1)
            self.ax_loss.text(self.resumed_at, 0.98, f" resumed at {self.resumed_at}", transform=self.ax_loss.get_xaxis_transform(),
                              ha="right", va="top", fontsize="small", color="gray")
        if self.title:
            self.figure.suptitle(self.title)
        self.figure.tight_layout()
        self.redraws += 1

    def png(self) -> bytes:
        """The current drawing as PNG bytes."""
        return self.figure.png()

    def _refresh(self):
        self._draw()
        if self._handle is not None:
            from IPython.display import Image

            self._handle.update(Image(data=self.png()))


__all__ = ["TITLES", "PngFigure", "series", "eval_metrics", "plot_history", "plot_run", "save_run_plot", "LiveLossPlot"]
