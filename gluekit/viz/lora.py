"""LoRA's two knobs in pictures: trainable parameters against ``r``, and an r / lora_alpha explorer.

Counts come from :func:`gluekit.lora.lora_trainable_on` (PEFT's own injection on a meta-device copy)
and the scaling from :func:`gluekit.lora.lora_scaling`; this module only caches and draws them.
"""
from __future__ import annotations

import html
from typing import Iterable, Mapping

from ..lora import count_parameters, format_count, lora_scaling, lora_trainable_on


class RankCounter:
    """Trainable LoRA parameters on ``model`` for ``target_modules``, for any ``r`` (cached per r).

    ``counter(8)`` is what ``LoraConfig(r=8, target_modules=...)`` adds; ``counter.total`` is the
    model's own parameter count (before LoRA).
    """

    def __init__(self, model, target_modules, total: int | None = None):
        self.model = model
        self.target_modules = target_modules
        self.total = count_parameters(model)[1] if total is None else total
        self._cache: dict[int, int] = {}

    def __call__(self, r: int) -> int:
        if r not in self._cache:
            from peft import LoraConfig

            tm = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
            self._cache[r] = lora_trainable_on(self.model, LoraConfig(r=r, lora_alpha=r, target_modules=tm))
        return self._cache[r]


def lora_numbers(r: int, lora_alpha: float, counters: Mapping[str, RankCounter]) -> dict:
    """What one (r, lora_alpha) pair means: the scaling factor and, per counter, trainable / total / percent."""
    rows = []
    for label, count in counters.items():
        n = count(r)
        total = count.total + n
        rows.append({"label": label, "trainable": n, "total": total, "percent": 100 * n / total})
    return {"r": r, "lora_alpha": lora_alpha, "scaling": lora_scaling(r, lora_alpha), "rows": rows}


def format_lora_numbers(numbers: dict) -> str:
    """Plain-text lines for :func:`lora_numbers` (PEFT's ``print_trainable_parameters`` format per row)."""
    lines = [f"r = {numbers['r']}, lora_alpha = {numbers['lora_alpha']:g} -> scaling lora_alpha / r = {numbers['scaling']:g}"]
    for row in numbers["rows"]:
        lines.append(f"{row['label']}: {format_count(row['trainable'], row['total'])}")
    return "\n".join(lines)


def plot_trainable_vs_r(rs: Iterable[int], counters: Mapping[str, RankCounter], highlight: int | None = 8, ax=None,
                        title: str | None = None, log: bool = False):
    """Trainable LoRA parameters (millions) against r, one line per counter (``log``: both axes log2).

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    rs = sorted(rs)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.8))
    else:
        fig = ax.figure
    for label, count in counters.items():
        ys = [count(r) / 1e6 for r in rs]
        if highlight is not None:
            label = f"{label}: {count(highlight):,} at r={highlight}"
        line, = ax.plot(rs, ys, marker="o", label=label)
        if highlight is not None:
            ax.plot([highlight], [count(highlight) / 1e6], marker="o", markersize=11, markerfacecolor="none",
                    color=line.get_color())
    if log:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xticks(rs, [str(r) for r in rs])
    else:
        ticks = [r for r in rs if r >= rs[-1] / 8] or rs
        ax.set_xticks([0] + ticks, ["0"] + [str(r) for r in ticks])
        ax.set_xlim(0, rs[-1] * 1.05)
        ax.set_ylim(0, None)
    ax.set_xlabel("r (LoRA rank)")
    ax.set_ylabel("trainable parameters (millions)")
    ax.set_title(title or "LoRA trainable parameters against r")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def lora_explorer(counters: Mapping[str, RankCounter], r: int = 8, lora_alpha: float = 32,
                  r_options: Iterable[int] = (1, 2, 4, 8, 16, 32, 64, 128),
                  alpha_options: Iterable[float] = (8, 16, 32, 64, 128)):
    """Two sliders (r, lora_alpha) and the numbers they give (:func:`format_lora_numbers`).

    Returns an ``ipywidgets.VBox``; its last child is the ``HTML`` with the text.
    """
    import ipywidgets as w

    style = {"description_width": "90px"}
    layout = w.Layout(width="480px")
    r_slider = w.SelectionSlider(options=sorted(set(r_options) | {r}), value=r, description="r",
                                 style=style, layout=layout, continuous_update=False)
    a_slider = w.SelectionSlider(options=sorted(set(alpha_options) | {lora_alpha}), value=lora_alpha,
                                 description="lora_alpha", style=style, layout=layout, continuous_update=False)
    out = w.HTML()

    def update(_=None):
        text = format_lora_numbers(lora_numbers(r_slider.value, a_slider.value, counters))
        out.value = f"<pre>{html.escape(text)}</pre>"

    r_slider.observe(update, names="value")
    a_slider.observe(update, names="value")
    update()
    return w.VBox([r_slider, a_slider, out])


__all__ = ["RankCounter", "lora_numbers", "format_lora_numbers", "plot_trainable_vs_r", "lora_explorer"]
