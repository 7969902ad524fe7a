"""gluekit.quiet: third-party noise silenced around the calls that make it; global state put back."""
import logging
import subprocess
import sys
import warnings

import pytest
from transformers.utils import logging as hf_logging

from gluekit.quiet import quiet_peft_wrap, transformers_logs


def _state():
    return hf_logging.get_verbosity(), list(hf_logging.get_logger().handlers)


def test_transformers_logs_sets_then_restores_verbosity_and_handlers():
    before = _state()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    with transformers_logs(logging.ERROR, handler=handler):
        assert hf_logging.get_verbosity() == logging.ERROR
        inside = list(hf_logging.get_logger().handlers)
        hf_logging.get_logger("transformers.trainer").error("to the handler")
    removed = [h for h in before[1] if h not in inside]
    assert handler in inside and len(removed) == 1 and type(removed[0]) is logging.StreamHandler  # the default one
    assert [r.getMessage() for r in records] == ["to the handler"]
    assert _state() == before
    with pytest.raises(RuntimeError), transformers_logs(logging.CRITICAL):
        raise RuntimeError("restored on the way out too")
    assert _state() == before


def test_transformers_logs_does_not_bring_back_a_handler_that_was_off():
    hf_logging.disable_default_handler()
    try:
        before = _state()
        with transformers_logs(handler=logging.NullHandler()):
            pass
        assert _state() == before
    finally:
        hf_logging.enable_default_handler()


def test_peft_wrap_warning_hidden_only_inside_the_block():
    from peft import LoraConfig, get_peft_model

    from gluekit.lora import apply_peft
    from gluekit.models import load_model

    def peft_warnings(wrap):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            wrap()
        return [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)]

    config = LoraConfig(r=2, target_modules=["q_proj"])
    assert peft_warnings(lambda: get_peft_model(load_model(), config))  # the noise, made by PEFT
    assert not peft_warnings(lambda: apply_peft(load_model(), config, verbose=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_peft_wrap():
            warnings.warn("another FutureWarning", FutureWarning)
    assert [str(w.message) for w in caught] == ["another FutureWarning"]  # other warnings pass


def test_import_gluekit_installs_no_warnings_filter():
    # the third-party libraries gluekit imports at its top level first: ruamel.yaml adds filters of its own
    code = ("import ruamel.yaml, warnings; before = list(warnings.filters); import gluekit, gluekit.cli, gluekit.quiet; "
            "print(warnings.filters == before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
