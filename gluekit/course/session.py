"""Notebook 12's session: the fine-tuning a user runs on their own GPU, and its CPU stand-in.

With ``GLUEKIT_MODEL`` (a local GLM-4-9B folder) and a CUDA device, :func:`start` gives the real
session: ``configs/lora.yaml`` in bf16 on the GPU (:func:`gluekit.device.accelerator`), and every
step after training (evaluation, before/after, chat) uses the model just trained, where it is: no
second copy is loaded. The merge then loads one copy from disk after the trained one is released.

Without them, the CPU stand-in: the embedded tiny GLM trains a short run of ``configs/tiny.yaml``
(:data:`SHORT_STEPS` steps, enough to watch the loss fall), and the steps that need a fully
trained adapter borrow the one notebook 00 trains with tiny.yaml for its 600 steps
(:func:`quickstart_adapter`: reused from notebook 00's folder when that holds the finished run,
else trained here once, the same way, into ``<output_dir>-00_quickstart``; notebook 00's folder is
never written).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .claims import LORA_YAML, TINY_YAML

MODEL_ENV = "GLUEKIT_MODEL"
"""A local GLM-4 model folder: with a CUDA device, the session trains it with lora.yaml."""
TRUST_ENV = "GLUEKIT_TRUST_REMOTE_CODE"
"""``1``: run the Python files that come with a remote-code model (the original glm-4-9b-chat)."""
SHORT_STEPS = 100
"""Steps of the CPU stand-in's training run: the logged loss falls from about 7 (steps 1-10) to under 2."""
QUICKSTART_DIR = Path("runs") / "00_quickstart"
"""Notebook 00's output_dir, relative to the notebooks' folder (where their kernels run)."""

def _quiet_overrides(output_dir) -> dict:
    return {"training_args.output_dir": str(output_dir), "training_args.log_level": "warning"}


def quickstart_config(output_dir=QUICKSTART_DIR):
    """Notebook 00's run: configs/tiny.yaml with its output_dir and ``log_level: warning``."""
    from ..config import load_config
    from ..tiny import DEMO_DIR

    return load_config(TINY_YAML, _quiet_overrides(output_dir), data_dir=DEMO_DIR)


def finished_run_problem(folder, cfg) -> str | None:
    """Why ``folder`` does not hold a finished run of ``cfg`` (a tiny-GLM LoRA config), or None when it does.

    Checked: the adapter file; trainer_state.json at ``global_step == max_steps`` of ``cfg`` with its
    per-device batch; the learning rate of every log record equal to ``cfg``'s schedule (so the
    peak LR, scheduler, warm-up and max_steps agree); the adapter's parameter count equal to what
    ``cfg``'s LoRA settings add to the tiny GLM (rank and target modules). Not checked: the seed
    and the data settings.
    """
    from ..lora import lora_trainable_on
    from ..memory import model_config_for
    from ..models import meta_model
    from ..plan import make_plan

    folder = Path(folder)
    weights = folder / "adapter" / "adapter_model.safetensors"
    state_file = folder / "trainer_state.json"
    if not weights.is_file() or not state_file.is_file():
        return "no finished run there (adapter or trainer_state.json missing)"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    args = cfg.training_arguments()
    if state.get("global_step") != args.max_steps or state.get("max_steps") != args.max_steps:
        return f"it stopped at step {state.get('global_step')} of {state.get('max_steps')}, not {args.max_steps}"
    if state.get("train_batch_size") != args.per_device_train_batch_size:
        return f"batch {state.get('train_batch_size')}, not {args.per_device_train_batch_size}"
    plan = make_plan(args, 1)
    for e in state.get("log_history", []):
        if "learning_rate" in e and not math.isclose(e["learning_rate"], plan.lr_at(e["step"]), rel_tol=1e-6):
            return f"learning rate {e['learning_rate']:.3g} at step {e['step']}, not {plan.lr_at(e['step']):.3g}"
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        found = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    expected = lora_trainable_on(meta_model(model_config_for(None)), cfg.peft_config_object())
    if found != expected:
        return f"its adapter has {found:,d} parameters, the config adds {expected:,d}"
    return None


def quickstart_adapter(own_dir, quickstart_dir=QUICKSTART_DIR) -> Path:
    """The adapter of notebook 00's run (configs/tiny.yaml, 600 steps), trained only if no finished copy exists.

    Looked for in ``quickstart_dir`` (notebook 00's folder), then in ``own_dir``; when neither holds
    the finished run (:func:`finished_run_problem`), it is trained into ``own_dir`` exactly as
    notebook 00 trains it (``train()`` seeds itself from the config), silently.
    """
    from ..tiny import DEMO_DIR
    from ..train import train

    for folder in (Path(quickstart_dir), Path(own_dir)):
        if finished_run_problem(folder, quickstart_config(folder)) is None:
            return folder / "adapter"
    result = train(quickstart_config(own_dir), DEMO_DIR, overwrite=True, print_logs=False)
    return result.adapter_dir


@dataclass
class Session:
    """One fine-tuning session: which model, on which device, with which config, into which folder."""

    model: str | None
    """The model folder (``GLUEKIT_MODEL``), or None for the embedded tiny GLM."""
    trust_remote_code: bool
    device: Any
    """``torch.device`` every model of the session is loaded on and generates on."""
    real: bool
    """True: the user's model on an accelerator with lora.yaml. False: the tiny GLM's CPU stand-in."""
    config: Any
    """The run's :class:`~gluekit.config.FinetuneConfig` (its test file is evaluated by :meth:`evaluate`)."""
    test_file: str | None
    data_dir: Path
    output_dir: Path
    note: str | None = None
    """Why the stand-in runs although a model was named (no accelerator)."""

    @property
    def model_name(self) -> str:
        return Path(self.model).name if self.model else "the embedded tiny GLM"

    def summary(self) -> str:
        """Model, config, output folder, and where models run, on two lines."""
        from ..device import describe

        steps = self.config.training_arguments(portable=True).max_steps
        what = "GLUEKIT_MODEL on the accelerator" if self.real else "the CPU stand-in"
        lines = [f"model: {self.model_name} | config: {self.config.path.name}, {steps} steps ({what}) | "
                 f"output_dir: {self.output_dir.as_posix()}",
                 f"device: every model of the session {describe(self.device)}"]
        if self.note:
            lines.append(f"note: {self.note}")
        return "\n".join(lines)

    def family(self) -> str:
        """Which GLM-4 the model is (:func:`gluekit.families.inspect_model`: config.json and the tokenizer
        files read as text; nothing from the folder runs)."""
        from ..families import inspect_model

        return inspect_model(self.model).summary()

    def plan(self):
        """Steps, epochs, log / eval / save steps and learning rates of the run (:func:`gluekit.plan.make_plan`)."""
        from ..data import data_file, read_jsonl
        from ..plan import make_plan

        n = len(read_jsonl(data_file(self.data_dir, self.config.data_config.train_file)))
        return make_plan(self.config.training_arguments(portable=True), n)

    def memory_plan(self):
        """Peak memory per device of the run (:func:`gluekit.memory.plan_memory`), in the session's dtype."""
        from ..device import dtype_for
        from ..memory import model_config_for, plan_memory

        dtype = str(dtype_for(self.device)).replace("torch.", "")
        return plan_memory(self.config, model_config_for(self.model), dtype=dtype, model_name=self.model_name)

    def card_check(self, memory=None) -> str:
        """The card against the plan's peak (:func:`gluekit.cards.fit`, what ``gluekit check`` prints: name,
        memory, bf16 support, the smallest change that fits); on the CPU, what runs instead."""
        from .. import cards
        from ..memory import GiB, model_config_for

        memory = memory or self.memory_plan()
        card = cards.present_card()
        if card is None:
            return (f"no CUDA card: every model {self._where()}; the planned peak, {memory.applies.total / GiB:.2f} GiB, "
                    "is host memory")
        return cards.fit(self.config, card, model_config_for(self.model), dtype=memory.dtype).summary()

    def _where(self) -> str:
        from ..device import describe

        return describe(self.device)

    def trained_model(self, result):
        """(model, tokenizer) the steps after training use.

        The real session: the model ``train()`` just trained (``result.trainer.model``), on its device,
        no copy. The stand-in: notebook 00's 600-step adapter (:func:`quickstart_adapter`) on the
        tiny GLM, loaded on :attr:`device`.
        """
        if self.real:
            return result.trainer.model, result.trainer.processing_class
        from ..generate import load_with_adapter

        return load_with_adapter(None, self.adapter_dir(result), device=self.device)

    def adapter_dir(self, result) -> Path:
        """The saved adapter of :meth:`trained_model`: the run's own, or notebook 00's on the stand-in."""
        if self.real:
            return result.adapter_dir
        return quickstart_adapter(self.output_dir.with_name(self.output_dir.name + "-00_quickstart"))

    def eval_rows(self, tokenizer, which: str = "test_file") -> list[dict]:
        """Eval samples of ``which`` (``test_file`` or ``val_file``), built with the config's combine and lengths."""
        from ..data import build_eval_rows, data_file, read_jsonl

        name = self.test_file if which == "test_file" else getattr(self.config.data_config, which)
        cfg = self.config
        return build_eval_rows(read_jsonl(data_file(self.data_dir, name)), tokenizer, cfg.combine,
                               cfg.max_input_length, cfg.max_output_length)

    def evaluate(self, model, tokenizer) -> dict:
        """ROUGE / BLEU-4 / exact match of ``model`` on the test file, as the Trainer's final test evaluation
        computes them (:func:`gluekit.evaluate.evaluate_rows` with the config's generation_config and
        per_device_eval_batch_size), generated on the model's device. Adds ``samples``."""
        from ..evaluate import evaluate_rows

        rows = self.eval_rows(tokenizer)
        args = self.config.training_arguments(portable=True)
        gen = self.config.generation_config(getattr(model, "generation_config", None))
        metrics, _ = evaluate_rows(model, tokenizer, rows, gen, batch_size=args.per_device_eval_batch_size)
        return {**metrics, "samples": len(rows)}


def start(output_dir="runs/12_session", environ: Mapping[str, str] | None = None, device=None,
          data_dir=None) -> Session:
    """The session notebook 12 runs: the real one with ``GLUEKIT_MODEL`` and an accelerator, else the CPU stand-in.

    ``environ`` (default ``os.environ``) and ``device`` (default :func:`gluekit.device.accelerator`)
    can be given, to see the real session's choices on a machine without a GPU.
    """
    from ..config import load_config
    from ..device import accelerator
    from ..tiny import DEMO_DIR

    env = os.environ if environ is None else environ
    model = env.get(MODEL_ENV) or None
    dev = accelerator(device, env)
    real = bool(model) and dev.type != "cpu"
    data_dir = Path(data_dir) if data_dir is not None else DEMO_DIR
    out = Path(output_dir)
    overrides = _quiet_overrides(out)
    if real:
        path = LORA_YAML
        overrides["training_args.bf16"] = True  # GLM-4 gives NaN losses in fp16; bf16 is safe
    else:
        path = TINY_YAML
        overrides.update({"training_args.max_steps": SHORT_STEPS, "training_args.logging_steps": 10,
                          "training_args.eval_steps": SHORT_STEPS, "training_args.save_strategy": "no"})
    base = load_config(path, data_dir=data_dir)
    overrides["data_config.test_file"] = None  # evaluated after training, by Session.evaluate
    cfg = load_config(path, overrides, data_dir=data_dir)
    note = None
    if model and not real:
        note = f"{MODEL_ENV} is set but there is no accelerator: the CPU stand-in runs instead."
        model = None
    return Session(model, env.get(TRUST_ENV) == "1", dev, real, cfg, base.data_config.test_file, data_dir, out, note)


__all__ = ["MODEL_ENV", "TRUST_ENV", "SHORT_STEPS", "QUICKSTART_DIR", "quickstart_config",
           "finished_run_problem", "quickstart_adapter", "Session", "start"]
