"""The Trainer gluekit runs: ``Seq2SeqTrainer`` with generation-based evaluation, its callbacks,
its training batches, and :func:`build_trainer`, which wires them together.

Every class here is defined at module level, so it can be subclassed or checked with
``isinstance``. Importing this module imports transformers and torch (``import gluekit`` does
not: :mod:`gluekit.train` and the command line import this module only when a run starts).
"""
from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import EarlyStoppingCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import speed_metrics

from .checkpoints import checkpoint_problem, list_checkpoints
from .tokens import IGNORE_INDEX
from .errors import TrainingError, TrainingInterrupted
from .evaluate import evaluate_rows
from .loss import label_only_inputs, supports_label_only_logits
from .packing import PackCollator, packing_problem
from .stopping import StopOnSignal, interruption
from .trackers import tracker_callbacks

# ---------------------------------------------------------------- batches


@dataclass
class PadCollator:
    """Pad a batch on the RIGHT: input_ids with the pad id, labels with -100, plus an attention mask.

    Right, not left: the native GLM numbers positions from the start of the row, so left padding in
    training would shift every token's rotary position against what generation sees.
    ``pad_to_multiple_of`` rounds the width up (tensor cores like multiples of 8).

    Why not transformers' ``DataCollatorForSeq2Seq``, which gives the same tensors (tests/test_trainer.py
    compares them on demo batches): it pads on ``tokenizer.padding_side`` and takes no side of its
    own. GLM-4's tokenizer pads on the left, which generation needs, so training would need a second
    tokenizer object set to the right; and the remote-code tokenizer of ``THUDM/glm-4-9b-chat``
    cannot pad on the right at all (its ``_pad`` asserts ``padding_side == "left"``). This
    collator needs only the pad id.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            width = math.ceil(width / self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.as_tensor(f["input_ids"])
            labels[row, :n] = torch.as_tensor(f["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def train_collator(cfg, model, tokenizer):
    """Right padding (:class:`PadCollator`), or with ``packing: true`` one padding-free row per batch
    (:class:`gluekit.packing.PackCollator`, same samples per step) if ``model`` supports it."""
    if not cfg.packing:
        return PadCollator(tokenizer.pad_token_id)
    problem = packing_problem(model)
    if problem:
        raise TrainingError(f"`packing`: {problem}")
    return PackCollator()


# ---------------------------------------------------------------- the Trainer


def nan_message(loss: float | str, step: int, learning_rate: float, label_tokens: int | None, output_dir: str | Path,
                what: str = "training loss") -> str:
    """Why a non-finite loss (or gradient) usually happens, and where to restart from."""
    causes = [f"a learning rate too high ({learning_rate:.3g} now; LoRA usually trains at 1e-4 to 1e-3)",
              "fp16 on GLM-4 (use bf16: true, or neither on CPU)"]
    if label_tokens == 0:
        causes.insert(0, "this batch has no label tokens (every reply cut away: check the length limits)")
    else:
        causes.append("a batch with no label tokens")
    ckpts = list_checkpoints(output_dir)
    where = (f"The last complete checkpoint is {ckpts[-1].name}: fix the cause, then resume with --resume latest "
             "(or start again with --overwrite)." if ckpts else "No checkpoint was saved before it.")
    return (f"{what} became {loss} at step {step}; training stopped before the optimizer applied it. "
            f"Likely causes: {'; '.join(causes)}. {where}")


class GenerationEvalTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose ``evaluate`` follows ``predict_with_generate``.

    True (GLM-4's configs): it generates a reply for every eval row and scores ROUGE/BLEU; those
    rows carry no labels (as in GLM-4's script), so there is no eval loss. False: the Trainer's own
    evaluation loop computes the loss on the reply tokens of samples built like training samples
    (``eval_dataset``), with no generation (:meth:`evaluate_loss`). Either way the metrics are
    logged like any Trainer metric (``eval_rouge-1`` ... or ``eval_loss`` in trainer_state.json),
    so ``metric_for_best_model`` and ``EarlyStoppingCallback`` can read them.
    ``eval_rows``: eval samples from :func:`gluekit.data.build_eval_rows`.
    """

    def __init__(self, *args, eval_rows: list[dict] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_rows = eval_rows or []
        # logits only where a label is predicted (gluekit.loss): same loss, less compute and memory
        self.label_only_logits = supports_label_only_logits(self.model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The Trainer's own loss, computed from label-position logits only where the model allows it."""
        if (self.label_only_logits and not return_outputs and "labels" in inputs
                and self.label_smoother is None and self.compute_loss_func is None):
            inputs = label_only_inputs(inputs)
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        """The eval loss (only the loss wanted, no generation) from label-position logits, as training
        computes it (:meth:`compute_loss`); the Trainer's own step asks for every position's logits."""
        if prediction_loss_only and not self.args.predict_with_generate and "labels" in inputs:
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad(), self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs)
            return loss.detach().mean(), None, None
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)

    def training_step(self, model, inputs, *args, **kwargs):
        """The Trainer's step, then a check: a NaN/inf loss stops training before the optimizer uses it.

        (transformers' ``logging_nan_inf_filter``, on by default, would otherwise leave such
        losses out of the logged average and train on.)
        """
        loss = super().training_step(model, inputs, *args, **kwargs)
        if not bool(torch.isfinite(loss.detach()).all()):
            labels = inputs.get("labels") if isinstance(inputs, dict) else None
            n_labels = int((labels != IGNORE_INDEX).sum()) if labels is not None else None
            lr = self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else self.args.learning_rate
            raise TrainingError(nan_message(float(loss.detach().float().mean()), self.state.global_step + 1, lr,
                                            n_labels, self.args.output_dir))
        return loss

    disk_plan = None
    """A :class:`gluekit.disk.DiskPlan` of the run (``train()`` sets it): the size a full-disk message quotes."""

    def train(self, *args, **kwargs):
        """The Trainer's ``train``, stopping cleanly on SIGINT / SIGTERM (see :mod:`gluekit.stopping`).

        With a :class:`~gluekit.stopping.StopOnSignal` among the callbacks (:func:`build_trainer`
        adds one), a signal ends training after the current step with a checkpoint of it, then
        raises :class:`~gluekit.errors.TrainingInterrupted` naming that checkpoint; a second signal
        stops at once and raises it naming the last complete one (or saying there is none).
        """
        stop = next((cb for cb in self.callback_handler.callbacks if isinstance(cb, StopOnSignal)), None)
        if stop is None:
            return super().train(*args, **kwargs)
        try:
            with stop.listening():
                result = super().train(*args, **kwargs)
        except KeyboardInterrupt as e:
            if isinstance(e, TrainingInterrupted):
                raise
            raise interruption(self.args.output_dir, stop.signum or 2, None, self.state.max_steps) from None
        if stop.signum:
            raise interruption(self.args.output_dir, stop.signum, stop.stopped_at, self.state.max_steps)
        return result

    def _save_checkpoint(self, model, trial):
        """The Trainer's checkpoint save; a save that fails or is interrupted leaves no half-written folder.

        The Trainer writes into ``checkpoint-N`` directly, trainer_state.json last. If anything stops
        it before that file (a full disk, a second Ctrl-C, an error), the folder is removed (by the
        process that saves, rank 0) and a full disk becomes a one-line
        :class:`~gluekit.errors.DiskFullError` with the sizes and the last complete checkpoint.
        """
        from .disk import checkpoint_bytes_estimate, disk_full_error, is_disk_full

        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        needed = self.disk_plan.checkpoint_bytes if self.disk_plan else checkpoint_bytes_estimate(self.model, self.args)
        try:
            super()._save_checkpoint(model, trial)
        except BaseException as e:
            removed = None
            if self.args.should_save and folder.is_dir() and checkpoint_problem(folder) is not None:
                shutil.rmtree(folder, ignore_errors=True)
                removed = folder.name
            if isinstance(e, Exception) and is_disk_full(e, folder.parent, needed):
                raise disk_full_error(folder.name, folder.parent, needed, self.args.output_dir, removed) from e
            raise

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", **gen_kwargs):
        """Generate a reply for every eval row (or the rows given), score them, log and return the metrics.

        Rank 0 writes the predictions to ``output_dir/eval_predictions/<prefix>-step-<N>.jsonl``.
        With ``predict_with_generate: false``, :meth:`evaluate_loss` instead.
        """
        if not self.args.predict_with_generate:
            return self.evaluate_loss(eval_dataset, metric_key_prefix)
        start = time.time()
        rows = eval_dataset if isinstance(eval_dataset, list) else self.eval_rows
        out_file = None
        if self.args.should_save:
            out_file = Path(self.args.output_dir) / "eval_predictions" / f"{metric_key_prefix}-step-{self.state.global_step}.jsonl"
        metrics, _ = evaluate_rows(
            self.model, self.processing_class, rows, self.args.generation_config,
            batch_size=self.args.per_device_eval_batch_size, predictions_file=out_file,
            shard=(self.args.process_index, self.args.world_size),
        )
        metrics = {f"{metric_key_prefix}_{k}": round(v, 4) for k, v in metrics.items()}
        metrics[f"{metric_key_prefix}_samples"] = len(rows)
        metrics.update(speed_metrics(metric_key_prefix, start, num_samples=len(rows)))  # the Trainer's own timing keys
        return self._log_evaluation(metrics, metric_key_prefix)

    def evaluate_loss(self, eval_dataset=None, metric_key_prefix: str = "eval") -> dict:
        """The loss on the reply tokens, from the Trainer's own evaluation loop: no generation.

        ``eval_dataset`` (default: the Trainer's): samples built like training samples
        (:func:`gluekit.data.build_train_dataset` on the eval file: input_ids, labels on the reply
        tokens), in batches of ``per_device_eval_batch_size`` through the training collator;
        ``<prefix>_loss`` is the Trainer's average (the batch losses weighted by batch size).
        """
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        start = time.time()
        output = self.evaluation_loop(self.get_eval_dataloader(dataset), description="Evaluation",
                                      prediction_loss_only=True, metric_key_prefix=metric_key_prefix)
        metrics = {f"{metric_key_prefix}_loss": output.metrics[f"{metric_key_prefix}_loss"],
                   f"{metric_key_prefix}_samples": output.num_samples}
        metrics.update(speed_metrics(metric_key_prefix, start, num_samples=output.num_samples))
        return self._log_evaluation(metrics, metric_key_prefix)

    def _log_evaluation(self, metrics: dict, metric_key_prefix: str) -> dict:
        """Log the metrics and hand them to the callbacks, as the Trainer does: an evaluation's (``eval_``
        prefix) to ``on_evaluate``, which EarlyStoppingCallback reads; the test file's to ``on_predict``,
        as ``Trainer.predict`` does, so no early-stopping decision follows the end of training."""
        self.log(metrics)
        event = self.callback_handler.on_evaluate if metric_key_prefix == "eval" else self.callback_handler.on_predict
        self.control = event(self.args, self.state, self.control, metrics)
        return metrics


# ---------------------------------------------------------------- callbacks


class NanGuard(TrainerCallback):
    """Stop when a logged loss is NaN/inf (a second line of defence: the per-step check in
    ``GenerationEvalTrainer.training_step`` fires first; this one also guards other Trainers)."""

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        """Finite loss, non-finite gradients (an overflow in backward): stop before the update too."""
        grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None] if model is not None else []
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            lr = optimizer.param_groups[0]["lr"] if optimizer is not None else args.learning_rate
            raise TrainingError(nan_message("nan or inf", state.global_step + 1, lr, None, args.output_dir,
                                            what="the gradients"))

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingError(nan_message(loss, state.global_step, args.learning_rate, None, args.output_dir))


class LogPrinter(TrainerCallback):
    """One short line per log record (rounded, so stored notebook outputs stay readable)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        parts = [f"step {state.global_step:>4}"]
        for k, v in logs.items():
            if k in ("epoch", "total_flos") or k.endswith(("_runtime", "_per_second")):
                continue
            parts.append(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}")
        print(" | ".join(parts), flush=True)


# ---------------------------------------------------------------- wiring


def trainer_arguments(cfg, model=None) -> Seq2SeqTrainingArguments:
    """``cfg.training_args`` as ``Seq2SeqTrainingArguments``, fitted to this machine.

    ``model``'s own generation config (its stop tokens) lies under ``training_args.generation_config``.
    Without CUDA, and only where the config leaves the field out: no pinned memory (it needs a GPU,
    else a warning); under torchrun, DDP on CPU processes (gloo) with every LoRA weight expected to
    get a gradient. Every default the run reads (seed, output_dir, batch sizes ...) is then the
    Trainer's own, read from the returned object.
    """
    fitted = {}
    if not torch.cuda.is_available():
        ta = cfg.training_args
        if "dataloader_pin_memory" not in ta:
            fitted["dataloader_pin_memory"] = False
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun sets WORLD_SIZE
            # transformers/accelerate set up DDP on CPU only with use_cpu=True; with ddp_backend="gloo"
            # alone each rank trains on its shard and gradients are never averaged.
            fitted["use_cpu"] = True
            if "ddp_backend" not in ta:
                fitted["ddp_backend"] = "gloo"
            if "ddp_find_unused_parameters" not in ta:
                fitted["ddp_find_unused_parameters"] = False
    return cfg.training_arguments(getattr(model, "generation_config", None), **fitted)


def build_trainer(cfg, model, tokenizer, data, print_logs: bool = True, callbacks: list | None = None,
                  args: Seq2SeqTrainingArguments | None = None) -> GenerationEvalTrainer:
    """A :class:`GenerationEvalTrainer` wired with gluekit's collator, evaluation and guards.

    ``data``: a :class:`gluekit.train.PreparedData`. ``args``: built by :func:`trainer_arguments`
    when not given. ``callbacks`` (instances or classes) come after gluekit's own.
    """
    args = args if args is not None else trainer_arguments(cfg, model)
    trackers = tracker_callbacks(args)  # report_to: swanlab >= 0.8 runs through its own callback
    eval_set = data.eval_rows if args.predict_with_generate else data.eval_loss  # what evaluate() scores
    stopping = []
    if cfg.early_stopping is not None:  # gluekit's key: transformers' callback, reading metric_for_best_model
        stopping = [EarlyStoppingCallback(cfg.early_stopping["patience"], cfg.early_stopping.get("threshold", 0.0))]
    trainer = GenerationEvalTrainer(
        model=model, args=args, train_dataset=data.train,
        eval_dataset=eval_set or None, eval_rows=data.eval_rows,
        data_collator=train_collator(cfg, model, tokenizer), processing_class=tokenizer,
        callbacks=[NanGuard(), StopOnSignal()] + stopping + ([LogPrinter()] if print_logs else []) + trackers,
    )
    # LogPrinter's short lines replace the raw dicts the Trainer prints with tqdm off; print_logs=False
    # prints neither. The caller's callbacks come after, so a PrinterCallback among them stays.
    trainer.remove_callback(PrinterCallback)
    if print_logs and args.disable_tqdm:
        trainer.remove_callback(ProgressCallback)
    for cb in callbacks or []:
        trainer.add_callback(cb)
        cb = trainer.callback_handler.callbacks[-1]  # an instance, also when a class was given
        cb.on_init_end(trainer.args, trainer.state, trainer.control)  # as the Trainer's own callbacks got it
    return trainer


__all__ = ["PadCollator", "train_collator", "nan_message", "GenerationEvalTrainer", "NanGuard", "LogPrinter",
           "trainer_arguments", "build_trainer"]
