"""The fine-tuning recipe: config -> data -> model -> LoRA -> Seq2SeqTrainer -> adapter, metrics, predictions.

Read :func:`train` top to bottom: its numbered steps run in dependency order, and everything that
can be checked without a model (config, resume point, data files) is checked before the model
loads. The rooms next door hold the parts: :mod:`gluekit.checkpoints` (the output folder and
resuming) and :mod:`gluekit.trainer` (the Trainer, its callbacks and its batches).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .checkpoints import resume_point, resume_request
from .config import FinetuneConfig, apply_overrides, load_config, trainer_default, validate
from .data import LengthReport, build_eval_rows, build_train_dataset, data_file, eval_subset, read_jsonl
from .errors import ConfigError, DataError, GluekitError, TrainingError
from .fileio import write_json
from .models import base_model
from .quantization import save_settings
from .trackers import swanlab_callbacks, swanlab_environment

# ---------------------------------------------------------------- the config of a run


def _with_keywords(overrides: Iterable[str] | dict | None, training_args: dict) -> Iterable[str] | dict | None:
    """``overrides`` plus each keyword as the override ``training_args.<name>`` (the keywords win)."""
    if not training_args:
        return overrides
    extra = {f"training_args.{k}": v for k, v in training_args.items()}
    if overrides is None or isinstance(overrides, dict):
        return {**(overrides or {}), **extra}
    # FIELD=VALUE strings (the command line's -o): the keywords become strings too, their values
    # written as JSON, which the YAML 1.2 reader parses back to the same value.
    return [*overrides, *(f"{k}={json.dumps(v, default=str)}" for k, v in extra.items())]


def run_config(config: str | Path | FinetuneConfig, overrides: Iterable[str] | dict | None = None,
               data_dir: str | Path | None = None, **training_args: Any) -> FinetuneConfig:
    """The validated config of a run: ``config`` with ``overrides`` and keyword Trainer arguments.

    A keyword ``name=value`` is the override ``training_args.name=value``, so it meets the same
    checks: ``train(path, data, max_steps="x")`` raises the ConfigError that
    ``overrides={"training_args.max_steps": "x"}`` raises. A file goes through :func:`load_config`
    (problems name its lines); a :class:`FinetuneConfig` with overrides is validated again from its
    ``to_dict()`` (the given object is not changed); one without overrides is used as it is.
    """
    merged = _with_keywords(overrides, training_args)
    if not isinstance(config, FinetuneConfig):
        return load_config(config, merged, data_dir=data_dir, check_machine=True)
    if not merged:
        return config
    raw, early = config.to_dict(), []
    try:
        apply_overrides(raw, merged)
    except ConfigError as e:  # malformed FIELD=VALUE strings: reported with the other problems
        early = e.problems
    path = config.path
    cfg = validate(raw, source=path.name if path else None, data_dir=data_dir,
                   cfg_dir=path.parent if path else None, problems=early, check_machine=True)
    cfg.path = path
    return cfg


# ---------------------------------------------------------------- data for a run


@dataclass
class PreparedData:
    train: Any
    """``datasets.Dataset`` with input_ids and labels."""
    report: LengthReport
    eval_rows: list[dict] = field(default_factory=list)
    """Generation samples of val_file scored at each evaluation (``eval_samples`` of them, if set)."""
    test_rows: list[dict] = field(default_factory=list)
    eval_loss: Any = None
    """With ``predict_with_generate: false``: val_file's samples built like training samples
    (input_ids, labels: the reply tokens), a ``datasets.Dataset`` scored by the eval loss."""
    test_loss: Any = None
    eval_indices: list[int] | None = None
    """With ``eval_samples``: which of val_file's samples each evaluation scores (None: all)."""


def prepare_data(cfg: FinetuneConfig, data_dir: str | Path, tokenizer, on_empty: str = "drop") -> PreparedData:
    """Read, validate and tokenise the train / val / test files named in ``data_config``."""
    dc = cfg.data_config
    problems, total = [], 0
    files = {}
    for key in ("train_file", "val_file", "test_file"):
        name = getattr(dc, key)
        if name is None:
            continue
        try:
            files[key] = read_jsonl(data_file(data_dir, name))
        except GluekitError as e:
            problems += [f"data_config.{key}: {p}" for p in e.problems]
            total += getattr(e, "total", len(e.problems))
    if problems:
        raise DataError(problems, str(data_dir), total=total) from None
    train, report = build_train_dataset(
        files["train_file"], tokenizer, cfg.combine, cfg.max_input_length, cfg.max_output_length,
        num_proc=dc.num_proc, on_empty=on_empty, source=dc.train_file,
    )
    if len(train) == 0:
        raise TrainingError(f"{dc.train_file}: every sample lost all its reply tokens to the length limit ({report.max_length} tokens).")

    def rows(key):
        return build_eval_rows(files[key], tokenizer, cfg.combine, cfg.max_input_length, cfg.max_output_length) if key in files else []

    def losses(key):  # the eval loss scores reply tokens: samples built as training builds them
        return build_train_dataset(files[key], tokenizer, cfg.combine, cfg.max_input_length, cfg.max_output_length,
                                   num_proc=dc.num_proc, source=getattr(dc, key))[0] if key in files else None

    if cfg.generates:
        data = PreparedData(train, report, rows("val_file"), rows("test_file"))
        n_eval = len(data.eval_rows)
    else:
        data = PreparedData(train, report, eval_loss=losses("val_file"), test_loss=losses("test_file"))
        n_eval = len(data.eval_loss) if data.eval_loss is not None else 0
    if cfg.eval_samples is not None and cfg.eval_samples < n_eval:  # a fixed random subset during training
        seed = cfg.training_args.get("seed", trainer_default("seed"))
        data.eval_indices = eval_subset(n_eval, cfg.eval_samples, seed)
        if cfg.generates:
            data.eval_rows = [data.eval_rows[i] for i in data.eval_indices]
        else:
            data.eval_loss = data.eval_loss.select(data.eval_indices)
    return data


# ---------------------------------------------------------------- the recipe


@dataclass
class RunResult:
    trainer: Any
    config: FinetuneConfig
    report: LengthReport
    adapter_dir: Path
    train_metrics: dict = field(default_factory=dict)
    test_metrics: dict = field(default_factory=dict)
    resumed_from: Path | None = None
    lora_note: str | None = None


def train(config: str | Path | FinetuneConfig, data_dir: str | Path, model: str | None = None, *,
          resume: Any = None, overrides=None, overwrite: bool = False, trust_remote_code: bool = False,
          print_logs: bool = True, callbacks: list | None = None, on_empty: str = "drop",
          **training_args) -> RunResult:
    """Fine-tune ``model`` (default: the embedded tiny GLM) as ``config`` says, on ``data_dir``.

    ``resume``: see :func:`gluekit.checkpoints.resume_request`. ``callbacks``: TrainerCallbacks
    added after gluekit's own. Keyword arguments are Trainer arguments (``max_steps=50``), applied
    as ``training_args`` overrides and validated with the config (see :func:`run_config`).

    Nothing is lost on the way: the run holds output_dir's lock for its whole life
    (:class:`gluekit.runlock.RunLock`; a second run into the same folder is refused); a damaged
    checkpoint is skipped with its reason (:func:`gluekit.checkpoints.resume_point`); Ctrl-C, a
    kernel interrupt or SIGTERM saves a checkpoint of the current step and raises
    :class:`~gluekit.errors.TrainingInterrupted` (:mod:`gluekit.stopping`); a full disk raises a
    one-line :class:`~gluekit.errors.DiskFullError` and leaves no half-written checkpoint or
    adapter (the adapter is written to ``adapter.partial`` and renamed when whole).
    """
    from .cards import compute_dtype_problem, present_card
    from .runlock import RunLock

    # 1) the config, keyword arguments included, validated as one
    cfg = run_config(config, overrides, data_dir, **training_args)
    problem = compute_dtype_problem(present_card(), cfg.quantization)  # needs the card: not a config rule
    if problem:
        raise ConfigError(problem, cfg.path.name if cfg.path else None)
    # 2) the output folder's lock, held until the run ends (rank 0 holds it for a torchrun job)
    output_dir = cfg.output_dir
    with RunLock(output_dir, enabled=int(os.environ.get("RANK", "0")) == 0) as lock:
        if lock.note:
            print(f"note: {lock.note}")
        try:
            return _train(cfg, data_dir, model, resume, overwrite, trust_remote_code, print_logs, callbacks, on_empty)
        except KeyboardInterrupt as e:  # outside the training loop (loading, a second Ctrl-C): say what is left
            from .errors import TrainingInterrupted

            if isinstance(e, TrainingInterrupted):
                raise
            from .stopping import interruption

            raise interruption(output_dir, signal.SIGINT) from None


def _train(cfg, data_dir, model, resume, overwrite, trust_remote_code, print_logs, callbacks, on_empty) -> RunResult:
    from transformers import set_seed

    from .disk import plan_disk_for_model
    from .lora import apply_peft
    from .models import load_model, load_tokenizer
    from .plan import make_plan
    from .trainer import build_trainer, trainer_arguments

    output_dir = cfg.output_dir
    # 3) the resume point, read from the output folder before anything loads
    point = resume_point(output_dir, resume, overwrite)
    checkpoint = point.checkpoint
    if resume_request(resume) is not None:
        for line in point.lines():
            print(line)
        if checkpoint is None:
            print(f"no complete checkpoint in {output_dir}: starting fresh")
    # 4) the tokenizer, then the data it tokenises
    tokenizer = load_tokenizer(model, trust_remote_code)
    data = prepare_data(cfg, data_dir, tokenizer, on_empty)
    if data.report.empty:
        print(f"dropped {len(data.report.empty)} training sample(s) with no reply token left "
              f"(lines {data.report.empty[:10]}): {data.report.summary()}")
    # 5) the model, the Trainer arguments (they need the model's generation config), then the
    #    adapter. Seed right before PEFT wraps the model: LoRA's A matrices are drawn then, before
    #    the Trainer would seed anything.
    net = load_model(model, trust_remote_code, quantization=cfg.quantization)
    args = trainer_arguments(cfg, net)
    set_seed(args.seed)
    note = None
    peft_config = cfg.peft_config_object()
    if peft_config is not None:
        net, note = apply_peft(net, peft_config, verbose=print_logs)
        if print_logs:
            net.print_trainable_parameters()
    # 6) the Trainer, and what the run will write against the free disk space (a warning, not a refusal:
    #    the estimate leaves out small files, and a full disk during a save now loses nothing).
    #    GLM-4's `swanlab:` key: the reference's environment, and SwanLab's own callback where installed.
    os.environ.update(swanlab_environment(cfg.swanlab))
    callbacks = swanlab_callbacks(cfg.swanlab, args.report_to) + list(callbacks or [])
    trainer = build_trainer(cfg, net, tokenizer, data, print_logs, callbacks, args=args)
    plan = make_plan(args, len(data.train), args.world_size)
    trainer.disk_plan = disk = plan_disk_for_model(cfg, plan, net, tokenizer, args=args)
    if disk.problem() and trainer.is_world_process_zero():
        print(f"warning: {disk.problem()}")
    # 7) train; from a checkpoint the Trainer restores optimizer, scheduler, RNG state and data position
    if checkpoint is not None and print_logs:
        print(f"resuming from {checkpoint.name}")
    with _saving("the run's files", output_dir, disk.checkpoint_bytes):
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    # 8) what the run leaves: trainer_state.json (the log), the adapter with its tokenizer, the test
    #    metrics and run_summary.json. A full disk here names what was being written.
    final = trainer.state.global_step
    with _saving("trainer_state.json", output_dir, disk.checkpoint["other"], final_step=final,
                 partial=output_dir / "trainer_state.json"):
        trainer.save_state()
    adapter_dir = output_dir / "adapter"
    with _saving("the adapter", output_dir, disk.final_bytes, final_step=final,
                 partial=adapter_dir.with_name("adapter.partial")):
        _save_adapter(trainer, tokenizer, adapter_dir)
    with _saving("the test predictions and run_summary.json", output_dir, 0, final_step=final):
        test_set = data.test_rows if cfg.generates else data.test_loss  # scored whole, whatever eval_samples says
        test_metrics = trainer.evaluate(test_set, metric_key_prefix="test") if test_set else {}
        if trainer.is_world_process_zero():
            write_json(output_dir / "run_summary.json", {
                "train": result.metrics, "test": test_metrics, "lengths": data.report.summary(),
                "resumed_from": checkpoint.name if checkpoint else None, "world_size": trainer.args.world_size})
    return RunResult(trainer, cfg, data.report, adapter_dir, result.metrics, test_metrics, checkpoint, note)


def _save_adapter(trainer, tokenizer, adapter_dir: Path) -> None:
    """The final adapter (or model) and its tokenizer, written to ``adapter.partial`` and renamed when whole
    (a failure leaves ``adapter.partial``, which :func:`_saving` removes)."""
    partial = adapter_dir.with_name(adapter_dir.name + ".partial")
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(partial, ignore_errors=True)
    trainer.save_model(str(partial))
    if main:
        tokenizer.save_pretrained(str(partial))
        settings = getattr(base_model(trainer.model), "gluekit_quantization", None)
        if settings:  # a QLoRA adapter: the merge and chat quantize the base with these settings
            save_settings(partial, settings)
        shutil.rmtree(adapter_dir, ignore_errors=True)
        os.replace(partial, adapter_dir)


@contextlib.contextmanager
def _saving(what: str, output_dir: Path, needed: int, final_step: int | None = None, partial: Path | None = None):
    """Write ``what``: whatever stops the write removes ``partial`` (a file or folder left cut off; rank 0),
    and a full disk becomes a one-line DiskFullError (other errors pass unchanged)."""
    try:
        yield
    except BaseException as e:
        removed = None
        if partial is not None and partial.exists() and int(os.environ.get("RANK", "0")) == 0:
            shutil.rmtree(partial, ignore_errors=True) if partial.is_dir() else partial.unlink(missing_ok=True)
            removed = partial.name
        if isinstance(e, GluekitError) or not isinstance(e, Exception):
            raise
        from .disk import disk_full_error, is_disk_full

        if is_disk_full(e, output_dir, needed):
            raise disk_full_error(what, output_dir, needed, output_dir, removed, final_step) from e
        raise


__all__ = ["PreparedData", "prepare_data", "RunResult", "run_config", "train"]
