"""The fine-tuning recipe: config -> data -> model -> LoRA -> Seq2SeqTrainer -> adapter, metrics, predictions.

Set-up runs in dependency order and everything that can be checked without a model (config,
data files, output folder, resume point) is checked before the model loads.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import FinetuneConfig, load_config
from .data import IGNORE_INDEX, LengthReport, build_eval_rows, build_train_dataset, data_file, read_jsonl
from .errors import DataError, GluekitError
from .evaluate import evaluate_rows
from .loss import label_only_inputs, supports_label_only_logits

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class TrainingError(GluekitError):
    kind = "training"


# ---------------------------------------------------------------- batches

@dataclass
class PadCollator:
    """Pad a batch on the RIGHT: input_ids with the pad id, labels with -100, plus an attention mask.

    Right, not left: the native GLM numbers positions from the start of the row, so left padding in
    training would shift every token's rotary position against what generation sees.
    ``pad_to_multiple_of`` rounds the width up (tensor cores like multiples of 8).
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict:
        import torch

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


# ---------------------------------------------------------------- data for a run

@dataclass
class PreparedData:
    train: Any
    """``datasets.Dataset`` with input_ids and labels."""
    report: LengthReport
    eval_rows: list[dict] = field(default_factory=list)
    test_rows: list[dict] = field(default_factory=list)


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

    return PreparedData(train, report, rows("val_file"), rows("test_file"))


# ---------------------------------------------------------------- output folder and resume

# What a run leaves in output_dir; a fresh run refuses to mix its results with these.
RUN_OUTPUTS = ("adapter", "eval_predictions", "trainer_state.json", "run_summary.json",
               "all_results.json", "train_results.json", "eval_results.json", "test_results.json")


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why ``folder`` (a ``checkpoint-N``) cannot be resumed from, or None if it is complete.

    The Trainer writes trainer_state.json LAST (after weights, optimizer, scheduler and RNG state;
    transformers 5 ``Trainer._save_checkpoint``), so a run killed while saving leaves a folder
    without it, or with a cut-off copy. Either way the folder is skipped, never resumed from
    (resuming would silently start with a fresh optimizer). A state whose ``global_step`` differs
    from the folder's number was copied from elsewhere and is skipped too.
    """
    p = Path(folder)
    m = CHECKPOINT_RE.match(p.name)
    state = p / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the Trainer writes it last, so saving was interrupted)"
    try:
        st = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return "trainer_state.json is cut off or unreadable (saving was interrupted)"
    if not isinstance(st, dict):
        return "trainer_state.json does not hold a Trainer state"
    step = st.get("global_step")
    if m and step is not None and step != int(m.group(1)):
        return f"trainer_state.json is for step {step}, not {m.group(1)}"
    return None


def incomplete_checkpoints(output_dir: str | Path) -> list[tuple[Path, str]]:
    """``(folder, reason)`` for every ``checkpoint-N`` folder that :func:`list_checkpoints` skips."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = []
    for p in out.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir():
            why = checkpoint_problem(p)
            if why:
                found.append((int(m.group(1)), p, why))
    return [(p, why) for _, p, why in sorted(found)]


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (see :func:`checkpoint_problem` for what "complete" means)."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = []
    for p in out.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir() and checkpoint_problem(p) is None:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def run_outputs(output_dir: str | Path) -> list[Path]:
    """What earlier runs left in ``output_dir``: checkpoint folders (complete or not) and RUN_OUTPUTS."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    def order(p: Path):  # checkpoints by step first, then the rest by name
        m = CHECKPOINT_RE.match(p.name)
        return (0, int(m.group(1)), "") if m else (1, 0, p.name)

    found = [p for p in out.iterdir() if (CHECKPOINT_RE.match(p.name) and p.is_dir()) or p.name in RUN_OUTPUTS]
    return sorted(found, key=order)


def resolve_resume(output_dir: str | Path, resume: Any, overwrite: bool = False) -> Path | None:
    """Turn a resume request into a checkpoint folder (or None for a fresh start).

    ``resume``: None / False / "no" = fresh; True / "yes" / "latest" / "auto" = newest complete
    checkpoint (fresh if there is none; an absent output_dir is fine); an integer N or "N" =
    ``checkpoint-N``, which must exist and be complete. A fresh start into a folder that holds an
    earlier run's results is refused unless ``overwrite``, which deletes those results (checkpoints,
    adapter, eval predictions, states) and nothing else. GLM-4's script silently skipped training
    for "no"; gluekit trains.
    """
    out = Path(output_dir)
    ckpts = list_checkpoints(out)
    word = str(resume).strip().lower() if resume is not None else "no"
    if word in ("no", "false", "none", "fresh", ""):
        leftovers = run_outputs(out)
        if ckpts and not overwrite:
            raise TrainingError(
                f"`training_args.output_dir`: {out} already holds {', '.join(p.name for p in ckpts)}. "
                "Resume with --resume latest or a step (in Python: resume=\"latest\"), pick another output_dir, or "
                "start over with --overwrite (overwrite=True).")
        if leftovers and not overwrite:
            raise TrainingError(
                f"`training_args.output_dir`: {out} already holds an earlier run's results "
                f"({', '.join(p.name for p in leftovers)}). Pick another output_dir, or pass --overwrite (in Python: overwrite=True) to replace them.")
        if leftovers and overwrite and int(os.environ.get("RANK", "0")) == 0:  # one process deletes, not each rank
            for p in leftovers:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        return None
    if word in ("yes", "true", "latest", "auto"):
        return ckpts[-1] if ckpts else None
    if word.isdigit():
        target = out / f"checkpoint-{int(word)}"
        if target not in ckpts:
            have = ", ".join(p.name for p in ckpts) or "none"
            if target.is_dir():
                raise TrainingError(f"resume: {target} is incomplete: {checkpoint_problem(target)} (complete checkpoints: "
                                    f"{have}). Resume from one of those, or use --resume latest (resume='latest').")
            raise TrainingError(f"resume: {target} does not exist or is incomplete (complete checkpoints: {have}).")
        return target
    raise TrainingError(f"resume: {resume!r} is not understood. Use latest, a step number, or no.")


# ---------------------------------------------------------------- trainer pieces

def world_size() -> int:
    """Processes in this data-parallel job (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def adapter_checksums(model) -> list[float]:
    """One float per rank: the sum of |trainable weights| (equal on every rank when DDP syncs)."""
    import torch
    import torch.distributed as dist

    local = float(sum(p.detach().double().abs().sum() for p in model.parameters() if p.requires_grad))
    if not (dist.is_available() and dist.is_initialized()):
        return [local]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, local)
    return [float(torch.tensor(x)) for x in out]


# ---------------------------------------------------------------- faults, for tests and demos only

FAULT_ENV = "GLUEKIT_TEST_FAULT"
"""``ACTION@PHASE:STEP`` makes a run fail on purpose, to test that it recovers. Never set it otherwise.

ACTION: ``kill`` (the process SIGKILLs itself), ``pause`` (write the marker file named by
``GLUEKIT_TEST_FAULT_FILE``, then sleep until killed from outside), ``nan`` (set the trainable
weights to NaN, so the next loss is NaN). PHASE and STEP say where:
``step:N`` during optimizer step N, after backward and before the optimizer applies it;
``eval:N`` during the evaluation at step N, replies generated but metrics not logged yet;
``save:N`` while checkpoint-N is being written: weights written, optimizer/RNG/trainer_state not yet.
``nan`` is only meaningful with ``step``. Example: ``GLUEKIT_TEST_FAULT=kill@save:20``.
"""
FAULT_FILE_ENV = "GLUEKIT_TEST_FAULT_FILE"
_FAULT_RE = re.compile(r"(kill|pause|nan)@(step|eval|save):(\d+)")


def parse_fault(text: str | None) -> tuple[str, str, int] | None:
    """``"kill@save:20"`` -> ``("kill", "save", 20)``; None for an unset or empty variable."""
    if not text or not text.strip():
        return None
    m = _FAULT_RE.fullmatch(text.strip())
    if not m:
        raise TrainingError(f"{FAULT_ENV}={text!r}: expected ACTION@PHASE:STEP with ACTION kill, pause or nan and "
                            "PHASE step, eval or save, e.g. kill@save:20. Unset it for a normal run.")
    return m.group(1), m.group(2), int(m.group(3))


def _fire_fault(action: str, where: str, model=None) -> None:
    import signal
    import sys
    import time

    sys.stdout.flush()
    sys.stderr.flush()
    if action == "nan":
        import torch

        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.fill_(float("nan"))
        return
    if action == "pause":
        marker = os.environ.get(FAULT_FILE_ENV)
        if marker:  # written whole, then renamed: whoever polls for it never reads it half-written
            Path(marker + ".tmp").write_text(where + "\n", encoding="utf-8")
            os.replace(marker + ".tmp", marker)
        time.sleep(3600)  # until the test kills this process
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


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


def _trainer_classes():
    from transformers import Seq2SeqTrainer, TrainerCallback

    class GenerationEvalTrainer(Seq2SeqTrainer):
        """Seq2SeqTrainer whose ``evaluate`` generates replies and scores ROUGE/BLEU.

        Eval batches carry no labels (as in GLM-4's script), so there is no eval loss; the
        metrics are logged like any Trainer metric (``eval_rouge-1`` ... in trainer_state.json).
        """

        def __init__(self, *args, eval_rows=None, processing_class=None, fault=None, **kwargs):
            super().__init__(*args, processing_class=processing_class, **kwargs)
            self.eval_rows = eval_rows or []
            self.fault = fault  # (action, phase, step) from GLUEKIT_TEST_FAULT, tests only
            # logits only where a label is predicted (gluekit.loss): same loss, less compute and memory
            self.label_only_logits = supports_label_only_logits(self.model)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            """The Trainer's own loss, computed from label-position logits only where the model allows it."""
            if (self.label_only_logits and not return_outputs and "labels" in inputs
                    and self.label_smoother is None and self.compute_loss_func is None):
                inputs = label_only_inputs(inputs)
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def _maybe_fault(self, phase: str) -> None:
            if self.fault and self.fault[1] == phase and self.fault[2] == self.state.global_step:
                _fire_fault(self.fault[0], f"{phase}:{self.state.global_step}", self.model)

        def training_step(self, model, inputs, *args, **kwargs):
            """The Trainer's step, then a check: a NaN/inf loss stops training before the optimizer uses it.

            (transformers' ``logging_nan_inf_filter``, on by default, would otherwise leave such
            losses out of the logged average and train on.)
            """
            import torch

            loss = super().training_step(model, inputs, *args, **kwargs)
            if not bool(torch.isfinite(loss.detach()).all()):
                labels = inputs.get("labels") if isinstance(inputs, dict) else None
                n_labels = int((labels != IGNORE_INDEX).sum()) if labels is not None else None
                lr = self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else self.args.learning_rate
                raise TrainingError(nan_message(float(loss.detach().float().mean()), self.state.global_step + 1, lr,
                                                n_labels, self.args.output_dir))
            return loss

        def save_model(self, output_dir=None, _internal_call: bool = False):
            super().save_model(output_dir, _internal_call)
            if _internal_call:  # writing a checkpoint: weights are on disk, the rest is not yet
                self._maybe_fault("save")

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", **gen_kwargs):
            rows = eval_dataset if isinstance(eval_dataset, list) else self.eval_rows
            out_file = None
            if self.args.should_save:
                out_file = Path(self.args.output_dir) / "eval_predictions" / f"{metric_key_prefix}-step-{self.state.global_step}.jsonl"
            metrics, _ = evaluate_rows(
                self.model, self.processing_class, rows, self.args.generation_config,
                batch_size=self.args.per_device_eval_batch_size, predictions_file=out_file,
                shard=(self.args.process_index, self.args.world_size),
            )
            self._maybe_fault("eval")
            metrics = {f"{metric_key_prefix}_{k}": round(v, 4) for k, v in metrics.items()}
            metrics[f"{metric_key_prefix}_samples"] = len(rows)
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    class NanGuard(TrainerCallback):
        """Stop when a logged loss is NaN/inf (a second line of defence: the per-step check in
        ``GenerationEvalTrainer.training_step`` fires first; this one also guards other Trainers)."""

        def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
            """Finite loss, non-finite gradients (an overflow in backward): stop before the update too."""
            import torch

            grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None] if model is not None else []
            if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
                lr = optimizer.param_groups[0]["lr"] if optimizer is not None else args.learning_rate
                raise TrainingError(nan_message("nan or inf", state.global_step + 1, lr, None, args.output_dir,
                                                what="the gradients"))

        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(loss):
                raise TrainingError(nan_message(loss, state.global_step, args.learning_rate, None, args.output_dir))

    class FaultInjector(TrainerCallback):
        """Test-only faults at a training step (see FAULT_ENV); eval and save faults live in the trainer."""

        def __init__(self, fault):
            self.action, self.phase, self.step = fault

        def on_step_begin(self, args, state, control, model=None, **kwargs):
            if self.action == "nan" and self.phase == "step" and state.global_step + 1 == self.step:
                _fire_fault("nan", f"step:{self.step}", model)

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            if self.action != "nan" and self.phase == "step" and state.global_step + 1 == self.step:
                _fire_fault(self.action, f"step:{self.step}")

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

    return GenerationEvalTrainer, NanGuard, LogPrinter, FaultInjector


def _train_collator(cfg: FinetuneConfig, model, tokenizer):
    """Right padding, or with ``packing: true`` one padding-free row per batch (same samples per step)."""
    if not cfg.packing:
        return PadCollator(tokenizer.pad_token_id)
    from .packing import PackCollator, packing_problem

    problem = packing_problem(model)
    if problem:
        raise TrainingError(f"`packing`: {problem}")
    return PackCollator()


def build_trainer(cfg: FinetuneConfig, model, tokenizer, data: PreparedData, print_logs: bool = True,
                  callbacks: list | None = None, **arg_overrides):
    """A ``Seq2SeqTrainer`` (subclass) wired with gluekit's collator, eval and guards."""
    import torch

    GenerationEvalTrainer, NanGuard, LogPrinter, FaultInjector = _trainer_classes()
    fault = parse_fault(os.environ.get(FAULT_ENV))
    if not torch.cuda.is_available():
        if "dataloader_pin_memory" not in cfg.training_args:
            arg_overrides.setdefault("dataloader_pin_memory", False)  # pinning needs a GPU (else a warning)
        if world_size() > 1:
            # Under torchrun on CPU, transformers/accelerate set up DDP only with use_cpu=True; with
            # ddp_backend="gloo" alone each rank trains on its shard and gradients are never averaged.
            arg_overrides["use_cpu"] = True
            arg_overrides.setdefault("ddp_backend", "gloo")
        if world_size() > 1 and "ddp_find_unused_parameters" not in cfg.training_args:
            arg_overrides.setdefault("ddp_find_unused_parameters", False)  # every LoRA weight gets a gradient
    args = cfg.training_arguments(getattr(model, "generation_config", None), **arg_overrides)
    cbs = [NanGuard()] + ([LogPrinter()] if print_logs else [])
    if fault:
        cbs.append(FaultInjector(fault))
    trainer = GenerationEvalTrainer(
        model=model, args=args, train_dataset=data.train,
        eval_dataset=data.eval_rows or None, eval_rows=data.eval_rows,
        data_collator=_train_collator(cfg, model, tokenizer), processing_class=tokenizer, callbacks=cbs,
        fault=fault,
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

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
          **arg_overrides) -> RunResult:
    """Fine-tune ``model`` (default: the embedded tiny GLM) as ``config`` says, on ``data_dir``.

    ``arg_overrides`` go straight to ``Seq2SeqTrainingArguments`` (e.g. ``use_cpu=True``).
    """
    from .lora import apply_peft
    from .models import load_model, load_tokenizer

    cfg = config if isinstance(config, FinetuneConfig) else load_config(config, overrides, data_dir=data_dir)
    output_dir = Path(arg_overrides.get("output_dir", cfg.training_args.get("output_dir", "./output")))
    # 1) everything checkable without the model: resume point, tokenizer, data
    checkpoint = resolve_resume(output_dir, resume, overwrite)
    if resume is not None and str(resume).strip().lower() not in ("no", "false", "none", "fresh", ""):
        for folder, why in incomplete_checkpoints(output_dir):
            print(f"skipping {folder.name}: {why}")
        if checkpoint is None:
            print(f"no complete checkpoint in {output_dir}: starting fresh")
    tokenizer = load_tokenizer(model, trust_remote_code)
    data = prepare_data(cfg, data_dir, tokenizer, on_empty)
    if data.report.empty:
        print(f"dropped {len(data.report.empty)} training sample(s) with no reply token left "
              f"(lines {data.report.empty[:10]}): {data.report.summary()}")
    # 2) the model, then the adapter (PEFT must wrap the loaded weights). Seed first: LoRA's A
    #    matrices are drawn when PEFT wraps the model, before the Trainer would seed anything.
    from transformers import set_seed

    set_seed(cfg.training_args.get("seed", 42))
    net = load_model(model, trust_remote_code)
    note = None
    peft_config = cfg.peft_config_object()
    if peft_config is not None:
        net, note = apply_peft(net, peft_config, verbose=print_logs)
        if print_logs:
            net.print_trainable_parameters()
    # 3) the Trainer; it restores optimizer, scheduler, RNG and data position from the checkpoint
    trainer = build_trainer(cfg, net, tokenizer, data, print_logs, callbacks, **arg_overrides)
    if checkpoint is not None and print_logs:
        print(f"resuming from {checkpoint.name}")
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trainer.save_state()  # trainer_state.json (log history) in output_dir
    adapter_dir = output_dir / "adapter"
    trainer.save_model(str(adapter_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(adapter_dir))
    test_metrics = {}
    if data.test_rows:
        test_metrics = trainer.evaluate(data.test_rows, metric_key_prefix="test")
    sums = adapter_checksums(trainer.model)
    if max(sums) - min(sums) > 1e-6 * max(1.0, abs(max(sums))):
        raise TrainingError(f"the adapters differ between the {len(sums)} ranks ({sums}): gradients were not synchronised.")
    if trainer.is_world_process_zero():
        with open(output_dir / "run_summary.json", "w", encoding="utf-8") as f:
            json.dump({"train": result.metrics, "test": test_metrics, "lengths": data.report.summary(),
                       "resumed_from": checkpoint.name if checkpoint else None, "world_size": len(sums),
                       "ranks_in_sync": True}, f, indent=2, ensure_ascii=False)
    return RunResult(trainer, cfg, data.report, adapter_dir, result.metrics, test_metrics, checkpoint, note)


def training_log(output_dir: str | Path) -> list[dict]:
    """``log_history`` of a finished run (from its trainer_state.json)."""
    out = Path(output_dir)
    candidates = [out / "trainer_state.json"] + [p / "trainer_state.json" for p in reversed(list_checkpoints(out))]
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))["log_history"]
    raise FileNotFoundError(f"no trainer_state.json in {out} or its checkpoints.")


__all__ = ["PadCollator", "PreparedData", "prepare_data", "list_checkpoints", "resolve_resume",
           "build_trainer", "train", "RunResult", "TrainingError", "training_log", "checkpoint_problem",
           "incomplete_checkpoints", "run_outputs", "nan_message", "parse_fault", "FAULT_ENV"]
