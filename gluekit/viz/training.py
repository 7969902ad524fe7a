"""A run in pictures: a live loss plot while the Trainer runs, curves from ``log_history``, a before/after table.

* :class:`LiveLossPlot` is a ``transformers.TrainerCallback``: pass it to ``gluekit.train.train(...,
  callbacks=[LiveLossPlot()])`` and one figure under the cell is redrawn at every log record
  (training loss on the left, an evaluation metric on the right). A resumed run starts with the
  records already in its checkpoint.
* :func:`plot_history` draws the same two panels from a finished run's ``log_history``
  (``gluekit.train.training_log(output_dir)`` or ``trainer.state.log_history``).
* :func:`before_after_html` shows the rows of ``gluekit.generate.compare`` as an HTML table.
"""
from __future__ import annotations

import html
from typing import Iterable

from transformers import TrainerCallback

DEFAULT_METRICS = ("eval_rouge-1", "eval_bleu-4", "eval_exact_match")


# ---------------------------------------------------------------- log_history -> series

def loss_series(log_history: Iterable[dict]) -> tuple[list[int], list[float]]:
    """(steps, losses) of the training-loss records (the periodic ``loss`` entries, not the final ``train_loss``)."""
    pts = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    return [s for s, _ in pts], [v for _, v in pts]


def metric_series(log_history: Iterable[dict], metric: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged metric, e.g. ``eval_exact_match`` or ``learning_rate``."""
    pts = [(e["step"], e[metric]) for e in log_history if metric in e and "step" in e]
    return [s for s, _ in pts], [v for _, v in pts]


def _draw_loss(ax, steps, losses, title="training loss"):
    ax.plot(steps, losses, marker="o", markersize=3, color="tab:blue", label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if losses and min(losses) > 0 and max(losses) / min(losses) > 20:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("loss (log scale)")
    ax.grid(alpha=0.3)


def plot_history(log_history: list[dict], metrics: Iterable[str] = DEFAULT_METRICS, title: str | None = None):
    """Two panels from a run's ``log_history``: training loss per logged step, and evaluation metrics (0..100).

    Returns the matplotlib Figure (end the notebook cell with ``;``).
    """
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(10, 3.4))
    steps, losses = loss_series(log_history)
    _draw_loss(ax_loss, steps, losses)
    drawn = 0
    for m in metrics:
        s, v = metric_series(log_history, m)
        if s:
            ax_eval.plot(s, v, marker="o", label=m.removeprefix("eval_"))
            drawn += 1
    ax_eval.set_xlabel("step")
    ax_eval.set_title("evaluation (generated replies vs references)")
    if drawn:
        ax_eval.set_ylim(-3, 103)
        ax_eval.legend(fontsize="small", loc="lower right")
    else:
        ax_eval.text(0.5, 0.5, "no evaluation records", ha="center", va="center", transform=ax_eval.transAxes, color="gray")
    if steps:
        for ax in (ax_loss, ax_eval):
            ax.set_xlim(0, max(steps) * 1.03)
    ax_eval.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
        self.figure = None
        self.redraws = 0
        self._records = 0
        self._handle = None
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.eval_steps: list[int] = []
        self.eval_values: list[float] = []
        self.max_steps: int | None = None
        self.resumed_at: int | None = None

    # -- Trainer events
    def on_train_begin(self, args, state, control, **kwargs):
        from matplotlib.figure import Figure

        self.max_steps = state.max_steps or args.max_steps
        # a resumed run: start from the records restored from the checkpoint
        self.steps, self.losses = loss_series(state.log_history)
        self.eval_steps, self.eval_values = metric_series(state.log_history, self.metric)
        self.resumed_at = state.global_step or None
        self.figure = Figure(figsize=self.figsize)  # not pyplot: the cell does not show it a second time
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
        _draw_loss(self.ax_loss, self.steps, self.losses,
                   title=f"training loss (step {done} of {self.max_steps})" if self.max_steps else "training loss")
        self.ax_eval.plot(self.eval_steps, self.eval_values, marker="o", color="tab:orange")
        self.ax_eval.set_title(self.metric)
        self.ax_eval.set_xlabel("step")
        self.ax_eval.set_ylim(-3, 103)
        self.ax_eval.grid(alpha=0.3)
        if not self.eval_steps:
            self.ax_eval.text(0.5, 0.5, "waiting for the first evaluation", ha="center", va="center",
                              transform=self.ax_eval.transAxes, color="gray")
        if self.max_steps:
            for ax in (self.ax_loss, self.ax_eval):
                ax.set_xlim(0, self.max_steps * 1.03)
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
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(self.figure)
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100)
        return buf.getvalue()

    def _refresh(self):
        self._draw()
        if self._handle is not None:
            from IPython.display import Image

            self._handle.update(Image(data=self.png()))


# ---------------------------------------------------------------- before / after

def _mark(ok: bool) -> str:
    return '<span style="color:#1a7f37">&#10003;</span>' if ok else '<span style="color:#cf222e">&#10007;</span>'


def _clip(text: str, max_chars: int | None) -> str:
    if not text:
        return "(empty)"
    return text if max_chars is None or len(text) <= max_chars else text[:max_chars] + "…"


def before_after_html(rows: list[dict], max_rows: int | None = None, title: str | None = None,
                      max_chars: int | None = 40):
    """An HTML table of ``gluekit.generate.compare`` rows: prompt, reference, reply before and after, exact marks.

    The header counts exact answers over ALL rows, even when ``max_rows`` shows only the first ones.
    Replies longer than ``max_chars`` characters are shown cut, with "…" (an untrained model rambles).
    """
    from IPython.display import HTML

    n = len(rows)
    before = sum(r["before_ok"] for r in rows)
    after = sum(r["after_ok"] for r in rows)
    shown = rows if max_rows is None else rows[:max_rows]
    head = title or "Before / after fine-tuning"
    out = [f"<div><b>{html.escape(head)}</b>: exact answers before {before}/{n}, after {after}/{n}"
           + (f" (first {len(shown)} rows shown)" if len(shown) < n else "") + "</div>",
           '<table style="border-collapse:collapse;font-size:90%">',
           "<tr>" + "".join(f'<th style="text-align:left;padding:2px 8px">{h}</th>'
                            for h in ("#", "prompt", "reference", "before", "", "after", "")) + "</tr>"]
    for i, r in enumerate(shown, start=1):
        cells = [str(i), r["prompt"], r["reference"], _clip(r["before"], max_chars)]
        tds = [f'<td style="text-align:left;padding:2px 8px">{html.escape(c)}</td>' for c in cells]
        tds.append(f'<td style="padding:2px 4px">{_mark(r["before_ok"])}</td>')
        tds.append(f'<td style="text-align:left;padding:2px 8px">{html.escape(_clip(r["after"], max_chars))}</td>')
        tds.append(f'<td style="padding:2px 4px">{_mark(r["after_ok"])}</td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table>")
    return HTML("\n".join(out))


__all__ = ["LiveLossPlot", "plot_history", "loss_series", "metric_series", "before_after_html", "DEFAULT_METRICS"]
