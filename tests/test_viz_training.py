"""gluekit.viz.training: series from log_history, the live plot callback, the before/after table."""
import types

import matplotlib

matplotlib.use("Agg")

from gluekit.viz.training import (  # noqa: E402
    LiveLossPlot, before_after_html, loss_series, metric_series, plot_history,
)

HISTORY = [
    {"loss": 4.0, "grad_norm": 1.0, "learning_rate": 3e-3, "epoch": 0.1, "step": 10},
    {"loss": 2.0, "grad_norm": 1.0, "learning_rate": 2e-3, "epoch": 0.2, "step": 20},
    {"eval_rouge-1": 40.0, "eval_bleu-4": 20.0, "eval_exact_match": 10.0, "eval_samples": 67, "epoch": 0.2, "step": 20},
    {"loss": 1.0, "grad_norm": 1.0, "learning_rate": 1e-3, "epoch": 0.3, "step": 30},
    {"eval_rouge-1": 90.0, "eval_bleu-4": 80.0, "eval_exact_match": 70.0, "eval_samples": 67, "epoch": 0.3, "step": 30},
    {"train_loss": 2.3, "train_runtime": 1.0, "epoch": 0.3, "step": 30},
]


def test_series_skip_the_final_train_loss():
    assert loss_series(HISTORY) == ([10, 20, 30], [4.0, 2.0, 1.0])
    assert metric_series(HISTORY, "eval_exact_match") == ([20, 30], [10.0, 70.0])
    assert metric_series(HISTORY, "learning_rate") == ([10, 20, 30], [3e-3, 2e-3, 1e-3])


def test_plot_history_draws_loss_and_metrics():
    import matplotlib.pyplot as plt

    fig = plot_history(HISTORY)
    ax_loss, ax_eval = fig.axes
    assert list(ax_loss.lines[0].get_xdata()) == [10, 20, 30]
    assert list(ax_loss.lines[0].get_ydata()) == [4.0, 2.0, 1.0]
    assert [line.get_label() for line in ax_eval.lines] == ["rouge-1", "bleu-4", "exact_match"]
    assert list(ax_eval.lines[2].get_ydata()) == [10.0, 70.0]
    plt.close(fig)
    fig = plot_history(HISTORY[:2])  # no evaluation yet: a note instead of an empty legend
    assert fig.axes[1].texts[0].get_text() == "no evaluation records"
    plt.close(fig)


def _state(step, history=(), max_steps=30):
    return types.SimpleNamespace(global_step=step, max_steps=max_steps, log_history=list(history), is_world_process_zero=True)


def test_live_plot_follows_log_events_without_display():
    cb = LiveLossPlot(display=False)
    args = types.SimpleNamespace(max_steps=30)
    cb.on_train_begin(args, _state(0), None)
    for rec in HISTORY:
        cb.on_log(args, _state(rec["step"]), None, logs={k: v for k, v in rec.items() if k != "step"})
    cb.on_train_end(args, _state(30), None)
    assert cb.steps == [10, 20, 30] and cb.losses == [4.0, 2.0, 1.0]
    assert cb.eval_steps == [20, 30] and cb.eval_values == [10.0, 70.0]
    ax_loss, ax_eval = cb.figure.axes
    assert list(ax_loss.lines[0].get_ydata()) == [4.0, 2.0, 1.0]
    assert list(ax_eval.lines[0].get_ydata()) == [10.0, 70.0]
    assert "step 30 of 30" in ax_loss.get_title()
    assert cb.redraws == 1 + 5 + 1  # begin, one per record with loss or metric, end


def test_live_plot_redraw_every_and_resume_history():
    cb = LiveLossPlot(display=False, every=2)
    args = types.SimpleNamespace(max_steps=30)
    cb.on_train_begin(args, _state(20, HISTORY[:3]), None)  # resumed at step 20: earlier records are kept
    assert cb.steps == [10, 20] and cb.eval_steps == [20]
    cb.on_log(args, _state(30), None, logs={"loss": 1.0})
    assert cb.redraws == 1  # every=2: not yet
    cb.on_log(args, _state(30), None, logs={"eval_exact_match": 70.0})
    assert cb.redraws == 2 and cb.steps == [10, 20, 30]
    assert cb.resumed_at == 20
    assert [line.get_xdata()[0] for line in cb.figure.axes[0].lines[1:]] == [20]  # the dashed resume mark
    assert cb.png().startswith(b"\x89PNG")


def test_live_plot_in_a_real_trainer(tmp_path, configs, demo_dir):
    from gluekit import load_config
    from gluekit.train import train

    cfg = load_config(f"{configs}/tiny.yaml", [
        "training_args.max_steps=4", "training_args.logging_steps=1", "training_args.eval_strategy=no",
        "training_args.save_strategy=no", "training_args.log_level=warning", "data_config.test_file=null",
        f"training_args.output_dir={tmp_path}"])
    cb = LiveLossPlot(display=False)
    result = train(cfg, demo_dir, print_logs=False, callbacks=[cb])
    assert cb.steps == [1, 2, 3, 4]
    assert cb.losses == [e["loss"] for e in result.trainer.state.log_history if "loss" in e]
    assert cb.max_steps == 4


def test_before_after_html_counts_all_rows_and_escapes():
    rows = [
        {"prompt": "成都属于哪个省?", "reference": "成都属于四川省。", "before": "<x>", "after": "成都属于四川省。",
         "before_ok": False, "after_ok": True},
        {"prompt": "q2", "reference": "r2", "before": "", "after": "r2", "before_ok": False, "after_ok": True},
        {"prompt": "q3", "reference": "r3", "before": "r3", "after": "no", "before_ok": True, "after_ok": False},
    ]
    out = before_after_html(rows, max_rows=2).data
    assert "exact answers before 1/3, after 2/3 (first 2 rows shown)" in out
    assert "&lt;x&gt;" in out and "<x>" not in out
    assert "(empty)" in out and "q3" not in out
    assert out.count("<tr>") == 3  # header + 2 rows
    long = [{**rows[0], "before": "很" * 100}]
    assert "很" * 40 + "…" in before_after_html(long).data and "很" * 41 not in before_after_html(long).data
    assert "很" * 100 in before_after_html(long, max_chars=None).data
