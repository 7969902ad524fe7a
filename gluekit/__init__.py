"""gluekit: learn and run GLM-4's ``lora.yaml`` with transformers, PEFT and Jupyter.

Modules, in import order (each imports only those before it):
``errors``, ``quiet``, ``fileio``, ``trackers``, ``doctor`` -> ``config`` (a package: schema, checks, rules, loader, draft),
``tokens``, ``checkpoints`` -> ``encoder`` -> ``data``; ``demo`` -> ``tiny`` -> ``models`` ->
``lora``, ``metrics``, ``plan``, ``memory``, ``loss``, ``packing`` -> ``evaluate`` -> ``trainer``
-> ``train`` -> ``background``, ``generate`` -> ``cli``.
At the edge, imported by none of them (``cli`` loads ``viz.training`` for ``gluekit plot`` only):
``gluekit.viz``, plotting and widgets, so that ``import gluekit`` needs no display; and
``gluekit.course``, the machinery the notebooks and tests use to show and check claims.

``import gluekit`` changes no global state: no warnings filter, logger or progress-bar setting
(:mod:`gluekit.quiet` silences third-party noise around the calls that make it).
"""
from __future__ import annotations

from .config import DataConfig, FinetuneConfig, load_config
from .data import (
    build_eval_rows, build_train_dataset, check_conversation, clean_message, encode_conversation, eval_examples,
    read_jsonl,
)
from .errors import ConfigError, DataError, GluekitError
from .lora import count_parameters, lora_scaling, resolve_targets
from .tokens import SpecialIds

__version__ = "0.1.0"

__all__ = [
    "DataConfig", "FinetuneConfig", "load_config", "SpecialIds", "build_eval_rows", "build_train_dataset",
    "check_conversation", "clean_message", "encode_conversation", "eval_examples", "read_jsonl",
    "ConfigError", "DataError", "GluekitError", "count_parameters", "lora_scaling", "resolve_targets",
]
