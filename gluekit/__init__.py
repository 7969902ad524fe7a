"""gluekit: learn and run GLM-4's ``lora.yaml`` with transformers, PEFT and Jupyter.

Modules, in import order (each imports only those before it):
``errors`` -> ``config`` -> ``data``, ``lora``, ``models``, ``plan``, ``metrics`` -> ``evaluate``
-> ``train`` -> ``generate`` -> ``cli``. Plotting and widgets live in ``gluekit.viz`` so that
``import gluekit`` needs no display.
"""
from __future__ import annotations

import warnings

# peft calls a transformers method deprecated in v5; the FutureWarning carries an absolute path
# and says nothing a gluekit user can act on.
warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)

from .config import DataConfig, FinetuneConfig, load_config  # noqa: E402
from .data import (  # noqa: E402
    SpecialIds, build_eval_rows, build_train_dataset, check_conversation, clean_message,
    encode_conversation, eval_examples, read_jsonl,
)
from .errors import ConfigError, DataError, GluekitError  # noqa: E402
from .lora import count_parameters, lora_scaling, resolve_targets  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "DataConfig", "FinetuneConfig", "load_config", "SpecialIds", "build_eval_rows", "build_train_dataset",
    "check_conversation", "clean_message", "encode_conversation", "eval_examples", "read_jsonl",
    "ConfigError", "DataError", "GluekitError", "count_parameters", "lora_scaling", "resolve_targets",
]
