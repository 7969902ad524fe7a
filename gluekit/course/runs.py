"""What the claim checks share: the tiny GLM's tokenizer, ``lora.yaml`` loaded and planned, and one short run.

The checks that need a real run (logs, evaluation, checkpoints) share one 20-step training of the
tiny GLM in a temporary folder, done once per process (:func:`short_run`).
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import io
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .claims import LORA_YAML, TINY_YAML


@functools.lru_cache(maxsize=None)
def tokenizer():
    """The tiny GLM's tokenizer (GLM-4's special tokens and template), loaded once."""
    from ..models import load_tokenizer

    return load_tokenizer()


@functools.lru_cache(maxsize=None)
def lora_config():
    """``configs/lora.yaml``, loaded once."""
    from ..config import load_config

    return load_config(LORA_YAML)


def lora_plan(num_samples: int = 600, num_devices: int = 1, **overrides):
    """``make_plan`` of lora.yaml (with ``training_args`` overrides) on ``num_samples`` samples."""
    from ..config import load_config
    from ..plan import make_plan

    cfg = load_config(LORA_YAML, {f"training_args.{k}": v for k, v in overrides.items()}) if overrides else lora_config()
    return make_plan(cfg.training_arguments(), num_samples, num_devices)


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@dataclass
class ShortRun:
    """A 20-step run of the tiny GLM with lora.yaml's logging/eval settings scaled down."""

    config: object
    result: object
    output_dir: Path
    printed: list[str]
    """Lines the Trainer printed on stdout (its PrinterCallback)."""
    log_messages: list[tuple[str, str]]
    """(level, message) of every transformers log record at log_level info."""

    @property
    def log_history(self) -> list[dict]:
        return self.result.trainer.state.log_history


SHORT_RUN_OVERRIDES = {
    "training_args.max_steps": 20, "training_args.logging_steps": 10, "training_args.save_steps": 10,
    "training_args.eval_steps": 20, "training_args.per_device_eval_batch_size": 4,
    "training_args.generation_config.max_new_tokens": 4, "training_args.log_level": "info",
    "data_config.test_file": None,
}


@functools.lru_cache(maxsize=None)
def short_run() -> ShortRun:
    """Train the tiny GLM 20 steps (log every 10, save every 10, evaluate at 20 with batch 4).

    The Trainer's own printer stays on (its stdout lines are captured), and transformers' log
    records at ``log_level: info`` are captured instead of going to stderr.
    """
    from transformers.trainer_callback import PrinterCallback

    from ..config import load_config
    from ..quiet import transformers_logs
    from ..tiny import DEMO_DIR
    from ..train import train

    tmp = tempfile.mkdtemp(prefix="gluekit-claims-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # the run lives as long as the process
    out = Path(tmp) / "run"
    cfg = load_config(TINY_YAML, {**SHORT_RUN_OVERRIDES, "training_args.output_dir": str(out)}, data_dir=DEMO_DIR)
    handler = _ListHandler()
    buf = io.StringIO()
    with transformers_logs(handler=handler), contextlib.redirect_stdout(buf):
        # gluekit's own log lines off; the Trainer's printer (its default with tqdm off) on
        result = train(cfg, DEMO_DIR, print_logs=False, callbacks=[PrinterCallback()])
    messages = [(r.levelname, r.getMessage()) for r in handler.records]
    return ShortRun(cfg, result, out, buf.getvalue().splitlines(), messages)


REFERENCE_EVAL_CONVERSATIONS = 12
"""Dev conversations the reference's own evaluation runs on (the first ones of the demo dev.jsonl)."""


@functools.lru_cache(maxsize=None)
def reference_eval_run(predict_with_generate: bool = True, remove_unused_columns: bool = False):
    """The reference's evaluation (:func:`gluekit.course.reference.reference_evaluate`) of the short
    run's model on the first :data:`REFERENCE_EVAL_CONVERSATIONS` dev conversations, with lora.yaml's
    ``combine`` and eval batch (4), the short run's ``max_new_tokens``: transformers'
    ``Seq2SeqTrainer.evaluate`` deciding what is generated, scored and logged."""
    from ..data import read_jsonl
    from ..tiny import DEMO_DIR
    from .reference import reference_evaluate

    run, seed = short_run(), lora_config()
    convs = [r["messages"] for r in read_jsonl(DEMO_DIR / "dev.jsonl")[:REFERENCE_EVAL_CONVERSATIONS]]
    return reference_evaluate(
        run.result.trainer.model, tokenizer(), convs, combine=seed.combine, max_input_length=seed.max_input_length,
        max_output_length=seed.max_output_length, predict_with_generate=predict_with_generate,
        per_device_eval_batch_size=seed.training_args["per_device_eval_batch_size"],
        max_new_tokens=run.config.training_args["generation_config"]["max_new_tokens"],
        output_dir=run.output_dir / "reference_eval", remove_unused_columns=remove_unused_columns)
