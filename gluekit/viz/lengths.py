"""Token lengths of a data set against ``max_input_length`` / ``max_output_length``.

Three limits meet three lengths (all in TOKENS):

* ``"prompt"``: each eval prompt (the conversation before a reply) is cut to ``max_input_length``;
* ``"reply"``: each eval reference reply is cut to ``max_output_length``;
* ``"train"``: each training sequence is cut to ``max_input_length + max_output_length + 1``.

:func:`measure_lengths` gets the uncut lengths from gluekit's own builders once; :func:`cut_counts`
counts what given limits would cut; :func:`length_histograms` draws them; :func:`limits_slider`
lets a reader move the limits.
"""
from __future__ import annotations

from ..config import sequence_max_length
from ..data import build_eval_rows, build_train_dataset

NO_LIMIT = 10**9  # a limit no sample reaches


def measure_lengths(rows: list[dict], tokenizer, combine: bool) -> dict[str, list[int]]:
    """Uncut token lengths: ``{"prompt": [...], "reply": [...], "train": [...]}``.

    ``rows`` come from :func:`gluekit.read_jsonl`. Prompts and replies are per eval sample (one per
    assistant turn with ``combine=False``), "train" is per conversation (with the appended ``<|user|>``).
    """
    _, report = build_train_dataset(rows, tokenizer, combine, NO_LIMIT, 0)
    evals = build_eval_rows(rows, tokenizer, combine, NO_LIMIT, NO_LIMIT)
    return {
        "prompt": [len(e["prompt_ids"]) - 1 for e in evals],  # without the final <|assistant|>
        "reply": [len(e["reference_ids"]) for e in evals],
        "train": list(report.lengths),
    }


def limits(max_input_length: int, max_output_length: int) -> dict[str, int]:
    """The limit each kind of length meets."""
    return {"prompt": max_input_length, "reply": max_output_length,
            "train": sequence_max_length(max_input_length, max_output_length)}


def cut_counts(lengths: dict[str, list[int]], max_input_length: int, max_output_length: int) -> dict[str, int]:
    """How many samples of each kind are longer than their limit (and so lose tokens)."""
    lim = limits(max_input_length, max_output_length)
    return {k: sum(n > lim[k] for n in lengths[k]) for k in ("prompt", "reply", "train")}


TITLES = {"prompt": "eval prompt", "reply": "eval reference reply", "train": "training sequence"}
LIMIT_NAMES = {"prompt": "max_input_length", "reply": "max_output_length", "train": "in + out + 1"}


def length_histograms(lengths: dict[str, list[int]], max_input_length: int, max_output_length: int,
                      bins: int = 30):
    """A pyplot ``Figure``: one histogram per kind, its limit as a red dashed line.

    Each title reads "kind: K of N cut" over "limit name = value". Bins hold whole numbers of tokens
    and one bin edge sits on the limit, so every bar right of the line is cut. In a notebook, call
    ``plt.show()`` after it (the figure is registered with pyplot).
    """
    import math

    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    lim = limits(max_input_length, max_output_length)
    cuts = cut_counts(lengths, max_input_length, max_output_length)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    for ax, kind in zip(axes, ("prompt", "reply", "train")):
        values = lengths[kind]
        right = max(max(values, default=0), lim[kind]) + 1
        width = max(1, math.ceil(right / bins))
        # bin edges fall on the limit + 0.5: a sample AT the limit stays left of the line (not cut)
        first = lim[kind] + 0.5 - width * math.ceil((lim[kind] + 0.5) / width)
        edges = [first + k * width for k in range(math.ceil((right - first) / width) + 1)]
        ax.hist(values, bins=edges, color="#90a4ae", edgecolor="white")
        ax.axvline(lim[kind] + 0.5, color="#c62828", linestyle="--", linewidth=2)
        ax.set_xlim(0, right * 1.05)
        ax.set_title(f"{TITLES[kind]}: {cuts[kind]} of {len(values)} cut\n"
                     f"limit (red): {LIMIT_NAMES[kind]} = {lim[kind]}", fontsize=10)
        ax.set_xlabel("tokens")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("samples")
    return fig


def limits_slider(lengths: dict[str, list[int]], max_input_length: int = 512, max_output_length: int = 512,
                  maximum: int | None = None):
    """Two sliders (``max_input_length``, ``max_output_length``) redrawing the counts and histograms.

    Released sliders only (``continuous_update=False``). Returns an ``ipywidgets.VBox``.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    top = maximum or max(max(v, default=1) for v in lengths.values())
    style = {"description_width": "140px"}
    layout = widgets.Layout(width="520px")
    s_in = widgets.IntSlider(value=max_input_length, min=1, max=max(top, max_input_length),
                             description="max_input_length", continuous_update=False, style=style, layout=layout)
    s_out = widgets.IntSlider(value=max_output_length, min=1, max=max(top, max_output_length),
                              description="max_output_length", continuous_update=False, style=style, layout=layout)
    out = widgets.Output()

    def redraw(_=None):
        out.clear_output(wait=True)
        with out:
            print(cut_counts(lengths, s_in.value, s_out.value))
            length_histograms(lengths, s_in.value, s_out.value)
            plt.show()

    s_in.observe(redraw, names="value")
    s_out.observe(redraw, names="value")
    redraw()
    return widgets.VBox([s_in, s_out, out])
