"""The fine-tuning recipe: config -> data -> model -> LoRA -> Seq2SeqTrainer -> adapter, metrics, predictions.

Read :func:`train` top to bottom: its numbered steps run in dependency order, and everything that
can be checked without a model (config, resume point, data files) is checked before the model
loads. The rooms next door hold the parts: :mod:`gluekit.checkpoints` (the output folder and
resuming) and :mod:`gluekit.trainer` (the Trainer, its callbacks and its batches).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .checkpoints import incomplete_checkpoints, resolve_resume, resume_request
from .config import FinetuneConfig, apply_overrides, load_config, trainer_default, validate
from .data import LengthReport, build_eval_rows, build_train_dataset, data_file, eval_subset, read_jsonl
from .errors import ConfigError, DataError, GluekitError, TrainingError
from .fileio import write_json

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
    """
    from transformers import set_seed

    from .lora import apply_peft
    from .models import load_model, load_tokenizer
    from .trainer import build_trainer, trainer_arguments

    # 1) the config, keyword arguments included, validated as one
    cfg = run_config(config, overrides, data_dir, **training_args)
    # 2) the resume point, read from the output folder before anything loads
    output_dir = cfg.output_dir
    checkpoint = resolve_resume(output_dir, resume, overwrite)
    if resume_request(resume) is not None:
        for folder, why in incomplete_checkpoints(output_dir):
            print(f"skipping {folder.name}: {why}")
        if checkpoint is None:
            print(f"no complete checkpoint in {output_dir}: starting fresh")
    # 3) the tokenizer, then the data it tokenises
    tokenizer = load_tokenizer(model, trust_remote_code)
    data = prepare_data(cfg, data_dir, tokenizer, on_empty)
    if data.report.empty:
        print(f"dropped {len(data.report.empty)} training sample(s) with no reply token left "
              f"(lines {data.report.empty[:10]}): {data.report.summary()}")
    # 4) the model, the Trainer arguments (they need the model's generation config), then the
    #    adapter. Seed right before PEFT wraps the model: LoRA's A matrices are drawn then, before
    #    the Trainer would seed anything.
    net = load_model(model, trust_remote_code)
    args = trainer_arguments(cfg, net)
    set_seed(args.seed)
    note = None
    peft_config = cfg.peft_config_object()
    if peft_config is not None:
        net, note = apply_peft(net, peft_config, verbose=print_logs)
        if print_logs:
            net.print_trainable_parameters()
    # 5) the Trainer; from a checkpoint it restores optimizer, scheduler, RNG state and data position
    trainer = build_trainer(cfg, net, tokenizer, data, print_logs, callbacks, args=args)
    if checkpoint is not None and print_logs:
        print(f"resuming from {checkpoint.name}")
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    # 6) what the run leaves: trainer_state.json (the log), the adapter with its tokenizer, the test
    #    metrics and run_summary.json
    trainer.save_state()
    adapter_dir = output_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(adapter_dir))
    test_set = data.test_rows if cfg.generates else data.test_loss  # scored whole, whatever eval_samples says
    test_metrics = trainer.evaluate(test_set, metric_key_prefix="test") if test_set else {}
    if trainer.is_world_process_zero():
        write_json(output_dir / "run_summary.json", {
            "train": result.metrics, "test": test_metrics, "lengths": data.report.summary(),
            "resumed_from": checkpoint.name if checkpoint else None, "world_size": trainer.args.world_size})
    return RunResult(trainer, cfg, data.report, adapter_dir, result.metrics, test_metrics, checkpoint, note)


__all__ = ["PreparedData", "prepare_data", "RunResult", "run_config", "train"]
