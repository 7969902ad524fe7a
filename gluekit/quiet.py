"""Silence third-party noise where it is made (stored notebook outputs, CLI logs), and put global state back.

Each helper is a context manager around the call that makes the noise, so ``import gluekit``
changes no global filter, logger or progress-bar setting.
"""
from __future__ import annotations

import contextlib
import logging
import warnings


@contextlib.contextmanager
def quiet_progress():
    """Hide transformers' "Loading weights" / "Writing model shards" bars (stderr noise in notebooks)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def transformers_logs(level: int | None = None, handler: logging.Handler | None = None):
    """Change transformers' global log state for a block, then put it back as it was.

    ``level`` (``logging.ERROR``, ...) sets transformers' verbosity; ``handler`` receives its log
    records instead of its default stderr handler. Afterwards the verbosity and the library
    logger's handlers are those from before the block, whatever happened inside it.
    """
    from transformers.utils import logging as hf_logging

    root = hf_logging.get_logger()  # the library's root logger, "transformers"
    verbosity, handlers = hf_logging.get_verbosity(), list(root.handlers)
    if level is not None:
        hf_logging.set_verbosity(level)
    if handler is not None:
        hf_logging.disable_default_handler()
        hf_logging.add_handler(handler)
    try:
        yield
    finally:
        if handler is not None:
            hf_logging.remove_handler(handler)
        # the handlers from before, in their order (the default one only if it was there), then any
        # that others added meanwhile
        root.handlers[:] = handlers + [h for h in root.handlers if h not in handlers]
        hf_logging.set_verbosity(verbosity)


@contextlib.contextmanager
def quiet_peft_wrap():
    """Hide the FutureWarning PEFT causes while it wraps a model (``get_peft_model``, ``PeftModel.from_pretrained``).

    PEFT reads ``is_gradient_checkpointing``, which transformers v5 deprecates; the warning carries
    an absolute path and says nothing a gluekit user can act on. Other warnings pass.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
