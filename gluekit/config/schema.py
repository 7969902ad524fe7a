"""What a ``lora.yaml`` holds: its keys, the :class:`DataConfig` and :class:`FinetuneConfig` dataclasses,
and the ecosystem objects a validated config builds (``Seq2SeqTrainingArguments``, ``GenerationConfig``,
the PEFT config).

Defaults of the Trainer's arguments are transformers' own: :func:`trainer_default` reads them from the
``Seq2SeqTrainingArguments`` dataclass, so no module types them again.
"""
from __future__ import annotations

import copy
import dataclasses
import enum
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import files

TOP_LEVEL_KEYS = (
    "data_config", "combine", "max_input_length", "max_output_length",
    "training_args", "peft_config", "freezeV",
    # gluekit's own key (not in GLM-4's files): padding-free batches (FinetuneConfig.packing). Each
    # batch is flattened into one row, so samples per step, steps per epoch and epochs are unchanged.
    "packing",
    # GLM-4's current finetune.py: SwanLab reporting, disabled / local / cloud (gluekit.trackers).
    "swanlab",
    # gluekit's own key: a 4-bit/8-bit base (QLoRA), BitsAndBytesConfig fields (gluekit.quantization)
    "quantization",
    # gluekit's own keys for evaluation choices (FinetuneConfig.early_stopping, .eval_samples):
    # training_args stays what Seq2SeqTrainingArguments accepts.
    "early_stopping", "eval_samples",
)
EARLY_STOPPING_KEYS = ("patience", "threshold")
DATA_CONFIG_KEYS = ("train_file", "val_file", "test_file", "num_proc")
# gluekit's output folder when training_args has no output_dir (transformers 5 alone would use
# ./trainer_output): the one definition, read by FinetuneConfig and the validation rules.
DEFAULT_OUTPUT_DIR = "./output"
# Arguments that depend on this machine's hardware or packages (bf16 needs a GPU that has it,
# deepspeed needs the deepspeed package): checked when training starts, left out of the arguments
# built for planning on any machine (none of them changes the steps or the learning rates).
DEVICE_DEPENDENT_ARGS = ("bf16", "fp16", "tf32", "bf16_full_eval", "fp16_full_eval", "use_cpu", "deepspeed",
                         "fsdp", "fsdp_config", "torch_compile", "half_precision_backend")


@functools.lru_cache(maxsize=1)
def _trainer_fields() -> dict[str, dataclasses.Field]:
    from transformers import Seq2SeqTrainingArguments

    return {f.name: f for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init}


def trainer_fields() -> dict[str, dataclasses.Field]:
    """``Seq2SeqTrainingArguments``' init fields by name (what ``training_args`` may hold)."""
    return dict(_trainer_fields())


def trainer_default(name: str) -> Any:
    """The default transformers gives ``Seq2SeqTrainingArguments.<name>`` (an Enum default as its value).

    >>> trainer_default("per_device_train_batch_size"), trainer_default("save_strategy")
    (8, 'steps')
    """
    f = _trainer_fields()[name]
    value = f.default_factory() if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING else f.default
    return value.value if isinstance(value, enum.Enum) else value


def sequence_max_length(max_input_length: int, max_output_length: int) -> int:
    """Tokens a training sequence is cut to: ``max_input_length + max_output_length + 1``, as the
    reference cuts it (the ``+ 1`` makes room for the ``<|user|>`` stop token appended to every sample)."""
    return max_input_length + max_output_length + 1


@dataclass
class DataConfig:
    """``data_config``: data files, relative to the data directory given at run time."""

    train_file: str
    """JSONL training file, one ``{"messages": [...]}`` conversation per line."""
    val_file: str | None = None
    """JSONL file evaluated every ``eval_steps`` (needed when ``eval_strategy`` is not ``no``)."""
    test_file: str | None = None
    """JSONL file predicted once after training."""
    num_proc: int | None = None
    """Processes for tokenisation (``datasets.Dataset.map(num_proc=...)``); None or 1 = in-process."""


@dataclass
class FinetuneConfig:
    """A validated ``lora.yaml``. Build the ecosystem objects with the methods below.

    ``training_args`` and ``peft_config`` hold the values as the file (and overrides) wrote them;
    what needs resolving (the DeepSpeed file's path) is resolved when the arguments are built.
    """

    data_config: DataConfig
    max_input_length: int
    """Prompt budget in TOKENS. Training uses only the sum with max_output_length."""
    max_output_length: int
    """Reply budget in TOKENS."""
    training_args: dict = field(default_factory=dict)
    """Passed whole to ``Seq2SeqTrainingArguments`` (``generation_config`` becomes a GenerationConfig)."""
    peft_config: dict | None = None
    """Passed to ``peft.get_peft_config``; None means full fine-tuning (``sft.yaml``)."""
    combine: bool = True
    """True: loss on the last reply only; False: loss on every assistant turn. Never 'concatenate or not'."""
    freezeV: bool | None = None
    """Read only by GLM-4V's vision script; no effect on text models."""
    early_stopping: dict | None = None
    """gluekit's own key: ``{patience: N, threshold: X}``, transformers' ``EarlyStoppingCallback``
    (``early_stopping_patience``, ``early_stopping_threshold``, default 0). Training stops when
    ``training_args.metric_for_best_model`` has failed to improve by more than ``threshold`` at
    ``patience`` evaluations in a row; with ``load_best_model_at_end: true`` the best evaluation's
    checkpoint is then loaded and saved as the adapter. None: no early stopping."""
    eval_samples: int | None = None
    """gluekit's own key: each evaluation DURING training scores the same fixed random
    ``eval_samples`` samples of ``val_file`` (drawn once with ``training_args.seed``), not all of
    them; the ``test_file`` is still scored whole after training (GLM-4's configs name the same
    dev.jsonl there). None: every evaluation scores the whole val_file, as the reference does."""
    packing: bool = False
    """gluekit's own key (GLM-4's files lack it). True: padding-free training batches. The
    ``per_device_train_batch_size`` samples of a batch are laid end to end in ONE row with no padding
    (``gluekit.packing.PackCollator``): position ids restart at 0 for each sample, each sample's first
    label is -100, and each sample attends only to itself (a block-causal mask). Losses and gradients
    equal those of the padded batch; samples per step, steps per epoch and epochs are unchanged, only
    the padding tokens (and their compute) disappear. Needs a transformers-native model (e.g.
    ``glm-4-9b-chat-hf``), not remote code. Generation batches are never packed (an eval-loss batch
    uses the training collator, so it is)."""
    swanlab: Any = None
    """GLM-4's current key (``disabled`` / ``local`` / ``cloud``; None when the file has none): see
    :mod:`gluekit.trackers` for what gluekit does with it at train time."""
    quantization: dict | None = None
    """gluekit's own key (GLM-4's files lack it): ``transformers.BitsAndBytesConfig`` fields as written,
    e.g. ``{load_in_4bit: true}``; None or ``load_in_4bit: false`` = a full-precision base. The defaults
    added for 4-bit (nf4, double quantization, compute dtype) are ``gluekit.quantization.resolve``'s."""
    path: Path | None = None
    """The file it was read from (a shipped copy's path when a bare name meant one)."""
    notes: list[str] = field(default_factory=list)
    """Non-fatal remarks found while validating (printed by ``gluekit check`` and ``gluekit plan``)."""
    config_dir: Path | None = None
    """The folder a relative ``training_args.deepspeed`` is looked up in after the current folder."""

    @property
    def max_length(self) -> int:
        """Training sequences are cut to this many tokens (the reference's ``+ 1`` is for the stop token)."""
        return sequence_max_length(self.max_input_length, self.max_output_length)

    def training_arguments(self, base_generation_config=None, *, portable: bool = False, **overrides: Any):
        """``Seq2SeqTrainingArguments`` built from ``training_args`` (plus keyword overrides).

        ``base_generation_config`` (the model's own) keeps its stop tokens: Seq2SeqTrainer
        replaces the model's generation config with the one in the arguments. A relative
        ``deepspeed`` path is resolved here (current folder, then the config's folder); a
        :class:`ConfigError` says when it is not found or the deepspeed package is missing.
        ``portable=True`` leaves out the arguments that need this machine's hardware or packages
        (``DEVICE_DEPENDENT_ARGS``: bf16, deepspeed, ...), for planning on any machine: none of them
        changes the steps, the schedule or the learning rates.
        """
        from transformers import Seq2SeqTrainingArguments

        args = {k: v for k, v in self.training_args.items() if k != "generation_config"}
        args.setdefault("output_dir", DEFAULT_OUTPUT_DIR)  # transformers 5 would use ./trainer_output
        args["generation_config"] = self.generation_config(base_generation_config)
        args.update(overrides)
        if portable:
            args = {k: v for k, v in args.items() if k not in DEVICE_DEPENDENT_ARGS}
        if isinstance(args.get("deepspeed"), str):
            args["deepspeed"] = str(self.deepspeed_path(args["deepspeed"]))
        if args.get("deepspeed") and not files.deepspeed_installed():  # else transformers' PackageNotFoundError
            raise ConfigError(f"`training_args.deepspeed`: {files.DEEPSPEED_MISSING}", self.path.name if self.path else None)
        return Seq2SeqTrainingArguments(**args)

    def deepspeed_path(self, value: str | None = None) -> Path | None:
        """The DeepSpeed JSON file ``training_args.deepspeed`` (or ``value``) names, or None without one.

        Looked up as the validation rule does; raises :class:`ConfigError` naming every place looked at.
        """
        value = self.training_args.get("deepspeed") if value is None else value
        if not isinstance(value, str):
            return None
        found = files.find_deepspeed(value, self.config_dir)
        if found is None:
            source = self.path.name if self.path else None
            raise ConfigError(f"`training_args.deepspeed`: {files.deepspeed_not_found(value, self.config_dir)}", source)
        return found

    def generation_config(self, base=None):
        """``training_args.generation_config`` as a ``GenerationConfig``, laid over ``base`` if given."""
        from transformers import GenerationConfig

        gen = copy.deepcopy(base) if base is not None else GenerationConfig()
        gen.update(**dict(self.training_args.get("generation_config") or {}))
        return gen

    def peft_config_object(self):
        """The PEFT config object (``LoraConfig``, ``PrefixTuningConfig``...), or None for full SFT."""
        if self.peft_config is None:
            return None
        from peft import get_peft_config

        return get_peft_config(copy.deepcopy(self.peft_config))

    @property
    def generates(self) -> bool:
        """Whether evaluation generates replies (``training_args.predict_with_generate``, transformers'
        default false): true, ROUGE/BLEU of generated replies; false, the loss on the reply tokens."""
        return bool(self.training_args.get("predict_with_generate", trainer_default("predict_with_generate")))

    @property
    def output_dir(self) -> Path:
        return Path(self.training_args.get("output_dir", DEFAULT_OUTPUT_DIR))

    def to_dict(self) -> dict:
        d = {
            "data_config": dataclasses.asdict(self.data_config),
            "combine": self.combine,
            "max_input_length": self.max_input_length,
            "max_output_length": self.max_output_length,
            "training_args": copy.deepcopy(self.training_args),
        }
        if self.peft_config is not None:
            d["peft_config"] = copy.deepcopy(self.peft_config)
        if self.freezeV is not None:
            d["freezeV"] = self.freezeV
        if self.packing:  # written only when on: GLM-4's own files never carry it
            d["packing"] = True
        if self.swanlab is not None:
            d["swanlab"] = self.swanlab
        if self.quantization is not None:
            d["quantization"] = copy.deepcopy(self.quantization)
        for key in ("early_stopping", "eval_samples"):  # gluekit's own keys, written only when set
            if getattr(self, key) is not None:
                d[key] = copy.deepcopy(getattr(self, key))
        return d
