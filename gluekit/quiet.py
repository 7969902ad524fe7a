"""Silence third-party progress bars where they are noise (stored notebook outputs, CLI logs)."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def quiet_progress():
    """Hide transformers' "Loading weights" / "Writing model shards" bars (stderr noise in notebooks)."""
    from transformers.utils import logging

    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            logging.enable_progress_bar()
