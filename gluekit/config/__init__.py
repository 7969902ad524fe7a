"""Load and validate GLM-4's ``lora.yaml`` (and its siblings) before any model loads.

Modules, in import order (each imports only those before it):

- ``files``: where files are: the configs shipped with gluekit (:func:`shipped_config`,
  :func:`shipped_configs`, a bare name such as ``tiny.yaml`` meaning the shipped copy) and the
  DeepSpeed JSON a config names.
- ``schema``: the keys of the file, :class:`DataConfig` and :class:`FinetuneConfig`, and
  the ecosystem objects a config builds; Trainer defaults read from transformers.
- ``checks``: the :class:`Context` every rule reads, and checks of one value that add a problem
  in gluekit's message form.
- ``training_rules``: the rules for ``training_args``, one concern each (``TRAINING_ARGS_RULES``).
- ``rules``: the rules for the rest of the file (``RULES``, which runs ``TRAINING_ARGS_RULES``);
  :func:`validate` runs them all and raises one :class:`~gluekit.errors.ConfigError` listing every
  problem with its file line.
- ``loader``: the YAML 1.2 reader, overrides, and :func:`load_config`.
"""
from __future__ import annotations

from .checks import did_you_mean
from .files import ShippedConfig, find_config, shipped_config, shipped_configs
from .loader import apply_overrides, load_config, parse_scalar
from .rules import RULES, validate
from .schema import (
    DATA_CONFIG_KEYS, DEFAULT_OUTPUT_DIR, DEVICE_DEPENDENT_ARGS, TOP_LEVEL_KEYS, DataConfig, FinetuneConfig,
    sequence_max_length, trainer_default,
)
from .training_rules import EVAL_METRICS, LOG_LEVELS, REMOVED_HINTS, REMOVED_TRAINING_ARGS, TRAINING_ARGS_RULES

__all__ = [
    "load_config", "validate", "parse_scalar", "apply_overrides", "did_you_mean", "DataConfig", "FinetuneConfig",
    "shipped_config", "shipped_configs", "ShippedConfig", "find_config", "trainer_default", "RULES",
    "TRAINING_ARGS_RULES", "TOP_LEVEL_KEYS", "DATA_CONFIG_KEYS", "DEFAULT_OUTPUT_DIR", "DEVICE_DEPENDENT_ARGS", "sequence_max_length",
    "REMOVED_TRAINING_ARGS", "REMOVED_HINTS", "LOG_LEVELS", "EVAL_METRICS",
]
