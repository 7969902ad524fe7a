"""gluekit.report and `gluekit plot`: a real tiny run's trainer_state.json drawn into a PNG."""
import pathlib

import pytest

from gluekit.cli import main
from gluekit.errors import GluekitError
from gluekit.report import TITLES, eval_metrics, plot_log_history, plot_run, series

ROOT = pathlib.Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def test_series_and_metric_names_from_the_run(run_dir):
    from gluekit.train import training_log

    log = training_log(run_dir)
    assert series(log, "loss")[0] == [1, 2, 3, 4, 5, 6]
    steps, lrs = series(log, "learning_rate")
    assert steps == [1, 2, 3, 4, 5, 6] and lrs[0] > lrs[-1] > 0  # linear decay from 3e-3
    names = eval_metrics(log)
    assert "eval_exact_match" in names and "eval_bleu-4" in names and "eval_samples" not in names
    assert series(log, "eval_exact_match")[0] == [3, 6]


def test_figure_has_the_three_panels(run_dir):
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
        plot_log_history([{"step": 3, "train_runtime": 1.0}])
    fig = plot_log_history([{"step": 1, "loss": 2.0}])  # no lr, no eval: panels say so
    assert [t.get_text() for t in fig.get_axes()[2].texts] == ["no evaluation metric logged"]
