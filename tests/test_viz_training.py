"""gluekit.viz.training: series from log_history, the three-panel figure, `gluekit plot`, the live plot callback."""
import pathlib
import types

import pytest

from gluekit.cli import main
from gluekit.errors import GluekitError
from gluekit.viz.training import TITLES, LiveLossPlot, PngFigure, eval_metrics, plot_history, plot_run, series

ROOT = pathlib.Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

HISTORY = [
    {"loss": 4.0, "grad_norm": 1.0, "learning_rate": 3e-3, "epoch": 0.1, "step": 10},
    {"loss": 2.0, "grad_norm": 1.0, "learning_rate": 2e-3, "epoch": 0.2, "step": 20},
    {"eval_rouge-1": 40.0, "eval_bleu-4": 20.0, "eval_exact_match": 10.0, "eval_samples": 67, "epoch": 0.2, "step": 20},
    {"loss": 1.0, "grad_norm": 1.0, "learning_rate": 1e-3, "epoch": 0.3, "step": 30},
    {"eval_rouge-1": 90.0, "eval_bleu-4": 80.0, "eval_exact_match": 70.0, "eval_samples": 67, "epoch": 0.3, "step": 30},
    {"train_loss": 2.3, "train_runtime": 1.0, "epoch": 0.3, "step": 30},
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import gluekit
    from gluekit.tiny import DEMO_DIR
    from gluekit.train import train

    out = tmp_path_factory.mktemp("report") / "run"
    cfg = gluekit.load_config(
        ROOT / "configs" / "tiny.yaml",
        ["training_args.max_steps=6", "training_args.logging_steps=1", "training_args.eval_steps=3",
         "training_args.save_strategy=no", "training_args.log_level=warning", f"training_args.output_dir={out}"])
    train(cfg, DEMO_DIR, print_logs=False)
    return out


def test_series_skip_the_final_train_loss_and_bookkeeping():
    assert series(HISTORY, "loss") == ([10, 20, 30], [4.0, 2.0, 1.0])
    assert series(HISTORY, "eval_exact_match") == ([20, 30], [10.0, 70.0])
    assert series(HISTORY, "learning_rate") == ([10, 20, 30], [3e-3, 2e-3, 1e-3])
    assert eval_metrics(HISTORY) == ["eval_rouge-1", "eval_bleu-4", "eval_exact_match"]  # eval_samples left out


def test_series_and_metric_names_from_a_real_run(run_dir):
    from gluekit.checkpoints import training_log

    log = training_log(run_dir)
    assert series(log, "loss")[0] == [1, 2, 3, 4, 5, 6]
    steps, lrs = series(log, "learning_rate")
    assert steps == [1, 2, 3, 4, 5, 6] and lrs[0] > lrs[-1] > 0  # linear decay from 3e-3
    names = eval_metrics(log)
    assert "eval_exact_match" in names and "eval_bleu-4" in names and "eval_samples" not in names
    assert series(log, "eval_exact_match")[0] == [3, 6]


def test_plot_history_draws_the_three_panels_without_pyplot():
    import matplotlib.pyplot as plt

    fig = plot_history(HISTORY, title="t")
    assert isinstance(fig, PngFigure) and not plt.get_fignums()  # pyplot's state untouched
    ax_loss, ax_lr, ax_eval = fig.axes
    assert [ax.get_title() for ax in fig.axes] == list(TITLES) and fig.get_suptitle() == "t"
    assert list(ax_loss.lines[0].get_xdata()) == [10, 20, 30] and list(ax_loss.lines[0].get_ydata()) == [4.0, 2.0, 1.0]
    assert ax_loss.get_yscale() == "linear"  # a 4-fold fall: no log scale
    assert list(ax_lr.lines[0].get_ydata()) == [3e-3, 2e-3, 1e-3]
    assert [line.get_label() for line in ax_eval.lines] == ["rouge-1", "bleu-4", "exact_match"]
    assert list(ax_eval.lines[2].get_ydata()) == [10.0, 70.0]
    only = plot_history(HISTORY, metrics=["eval_exact_match"])
    assert [line.get_label() for line in only.axes[2].lines] == ["exact_match"]
    assert fig._repr_png_().startswith(PNG_MAGIC)  # what a notebook cell returning it shows


def test_loss_falling_more_than_20_fold_gets_a_log_scale():
    fig = plot_history([{"step": 1, "loss": 50.0}, {"step": 2, "loss": 1.0}])
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_ylabel() == "loss (log scale)"


def test_figure_of_a_real_run(run_dir):
    fig = plot_run(run_dir)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == list(TITLES)
    assert all(ax.get_xlabel() == "step" for ax in axes)
    loss_ax, lr_ax, eval_ax = axes
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert len(lr_ax.get_lines()) == 1
    labels = [line.get_label() for line in eval_ax.get_lines()]
    assert "exact_match" in labels and "rouge-1" in labels
    assert fig.get_suptitle() == "run run"


def test_cli_plot_writes_a_png(run_dir, tmp_path, capsys):
    out = tmp_path / "sub" / "curves.png"
    assert main(["plot", str(run_dir), "--out", str(out)]) == 0
    assert "plot saved to" in capsys.readouterr().out
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 380)


def test_cli_plot_default_out_and_missing_run(run_dir, tmp_path, capsys):
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "training_curves.png").is_file()
    assert main(["plot", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert "no trainer_state.json" in err and "Traceback" not in err


def test_empty_history_is_an_input_error():
    with pytest.raises(GluekitError, match="no loss, learning rate"):
        plot_history([{"step": 3, "train_runtime": 1.0}])
    fig = plot_history([{"step": 1, "loss": 2.0}])  # no lr, no eval: panels say so
    assert [t.get_text() for t in fig.get_axes()[1].texts] == ["no learning rate logged"]
    assert [t.get_text() for t in fig.get_axes()[2].texts] == ["no evaluation metric logged"]


def _state(step, history=(), max_steps=30):
    return types.SimpleNamespace(global_step=step, max_steps=max_steps, log_history=list(history), is_world_process_zero=True)


def test_live_plot_follows_log_events_without_display():
    cb = LiveLossPlot(display=False)
    args = types.SimpleNamespace(max_steps=30)
    cb.on_train_begin(args, _state(0), None)
    assert cb.figure.axes[1].texts[0].get_text() == "waiting for the first evaluation"
    for rec in HISTORY:
        cb.on_log(args, _state(rec["step"]), None, logs={k: v for k, v in rec.items() if k != "step"})
    cb.on_train_end(args, _state(30), None)
    assert cb.steps == [10, 20, 30] and cb.losses == [4.0, 2.0, 1.0]
    assert cb.eval_steps == [20, 30] and cb.eval_values == [10.0, 70.0]
    ax_loss, ax_eval = cb.figure.axes
    assert list(ax_loss.lines[0].get_ydata()) == [4.0, 2.0, 1.0]
    assert list(ax_eval.lines[0].get_ydata()) == [10.0, 70.0]
    assert "step 30 of 30" in ax_loss.get_title() and ax_eval.get_title() == "eval_exact_match"
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
    assert cb.png().startswith(PNG_MAGIC)


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
    assert cb.figure.axes[1].texts[0].get_text() == "no evaluation in this run\n(eval_strategy: no)"
