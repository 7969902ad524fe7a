"""gluekit.viz.schedule: pictures and the explorer show exactly the plan (no re-derived steps or rates)."""
import html

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from gluekit import load_config  # noqa: E402
from gluekit.plan import make_plan  # noqa: E402
from gluekit.viz.schedule import (  # noqa: E402
    epoch_boundaries, plan_html, plan_with, plot_learning_rate, plot_timeline, schedule_explorer, timeline_rows,
)


@pytest.fixture(scope="module")
def cfg():
    import os

    return load_config(os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "lora.yaml"))


@pytest.fixture(scope="module")
def plan(cfg):
    return make_plan(cfg.training_arguments(), 600)


def test_plan_with_applies_training_args(cfg, plan):
    assert plan_with(cfg, 600).to_dict() == plan.to_dict()
    assert plan_with(cfg, 600, max_steps=1200).checkpoints == ["checkpoint-500", "checkpoint-1000", "checkpoint-1200"]
    p = plan_with(cfg, 600, 2, per_device_train_batch_size=4)
    assert (p.global_batch_size, p.steps_per_epoch) == (8, 75)


def test_rows_and_epoch_boundaries(plan):
    rows = timeline_rows(plan)
    assert [label for label, _ in rows] == ["log", "evaluate", "save"]
    assert rows[0][1] == plan.log_steps and rows[1][1] == plan.eval_steps and rows[2][1] == plan.save_steps
    assert epoch_boundaries(plan) == [600, 1200, 1800, 2400, 3000]


def _vline_xs(ax):
    """x of every vertical tick drawn with ``vlines``, per collection label."""
    out = {}
    for coll in ax.collections:
        if not hasattr(coll, "get_segments"):  # the scatter of logged points
            continue
        xs = sorted(seg[0][0] for seg in coll.get_segments())
        out[coll.get_label()] = xs
    return out


def test_timeline_marks_every_planned_step(plan):
    fig = plot_timeline(plan)
    ax = fig.axes[0]
    marks = _vline_xs(ax)
    assert marks["log (300)"] == plan.log_steps
    assert marks["evaluate (6)"] == plan.eval_steps
    assert marks["save (6)"] == plan.save_steps
    assert [t.get_text() for t in ax.get_yticklabels()] == ["save", "evaluate", "log"]
    dotted = sorted(line.get_xdata()[0] for line in ax.get_lines())
    assert dotted == epoch_boundaries(plan)
    plt.close(fig)


def test_timeline_says_when_a_row_is_empty(cfg):
    p = plan_with(cfg, 600, eval_strategy="no", save_strategy="no", max_steps=100)
    fig = plot_timeline(p)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "no evaluate" in texts and "no save" in texts
    plt.close(fig)


def test_learning_rate_curve_is_the_plan(cfg):
    p = plan_with(cfg, 600, max_steps=50, save_steps=20)
    logged = [(s, p.lr_at(s)) for s in (10, 20, 30)]
    fig = plot_learning_rate(p, logged)
    ax = fig.axes[0]
    curve = ax.get_lines()[0]
    assert list(curve.get_xdata()) == list(range(1, 51))
    assert list(curve.get_ydata()) == p.learning_rates
    assert [tuple(xy) for xy in ax.collections[0].get_offsets()] == [tuple(map(float, pt)) for pt in logged]
    assert _vline_xs(ax)["checkpoint saved"] == [20, 40, 50]
    assert ax.get_lines()[1].get_ydata()[0] == pytest.approx(5e-4)  # the configured rate
    plt.close(fig)


def test_learning_rate_peak_line_with_warmup(cfg):
    p = plan_with(cfg, 600, max_steps=40, warmup_steps=10)
    assert p.lr_at(1) == 0.0
    fig = plot_learning_rate(p, mark_saves=False)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "learning_rate = 0.0005" in labels and "planned (linear, warm-up 10)" in labels
    plt.close(fig)


def test_explorer_shows_the_plan_and_follows_the_sliders(cfg, plan):
    box = schedule_explorer(cfg, 600)
    max_steps, save_steps, batch, out = box.children
    assert (max_steps.value, save_steps.value, batch.value) == (3000, 500, 1)
    assert out.value == plan_html(plan)
    max_steps.value, save_steps.value, batch.value = 1000, 300, 4
    expected = plan_with(cfg, 600, max_steps=1000, save_steps=300, per_device_train_batch_size=4)
    assert out.value == plan_html(expected)
    assert "checkpoint-300, checkpoint-600, checkpoint-900, checkpoint-1000" in html.unescape(out.value)


def test_plan_html_escapes(plan):
    text = plan_html(plan)
    assert text.startswith("<pre>") and text.endswith("</pre>")
    assert html.unescape(text[5:-6]) == plan.summary()


def test_explorer_starts_from_the_built_arguments():
    # a config that leaves max_steps, save_steps and the batch size to transformers:
    # 3.0 epochs, save_steps 500, batch 8 -> 600 samples / 8 = 75 steps per epoch, 225 steps
    from gluekit.config import trainer_default, validate

    cfg = validate({"data_config": {"train_file": "t.jsonl"}, "max_input_length": 8, "max_output_length": 8,
                    "training_args": {"report_to": "none"}})
    max_steps, save_steps, batch, _ = schedule_explorer(cfg, 600).children
    assert (trainer_default("num_train_epochs"), trainer_default("save_steps"), trainer_default("per_device_train_batch_size")) == (3.0, 500, 8)
    assert (max_steps.value, save_steps.value, batch.value) == (225, 500, 8)
    # a save_steps below 1 is a fraction of max_steps (transformers' rule)
    cfg = validate({"data_config": {"train_file": "t.jsonl"}, "max_input_length": 8, "max_output_length": 8,
                    "training_args": {"max_steps": 1000, "save_steps": 0.25, "report_to": "none"}})
    assert [s.value for s in schedule_explorer(cfg, 600).children[:2]] == [1000, 250]


def test_plans_of_a_gpu_config_are_drawn_without_a_gpu(cfg):
    # bf16 needs a GPU that has it: planning leaves such flags out (the steps do not depend on them)
    assert plan_with(cfg, 600, bf16=True, max_steps=100).save_steps == [100]
