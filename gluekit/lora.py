"""LoRA on GLM-4 with PEFT: target-module names, the scaling factor, parameter accounting.

GLM-4-9B-chat's remote code fuses q, k and v into one ``query_key_value`` layer; transformers'
native GLM classes (``glm-4-9b-chat-hf``) keep ``q_proj``/``k_proj``/``v_proj``. The seed
``lora.yaml`` names the fused layer, which matches nothing in a native model: :func:`resolve_targets`
maps it and says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError
from .quiet import quiet_peft_wrap

# Remote-code GLM-4 name -> the native GLM / GLM-4 names of the same weights.
REMOTE_TO_NATIVE = {
    "query_key_value": ["q_proj", "k_proj", "v_proj"],
    "dense": ["o_proj"],
    "dense_h_to_4h": ["gate_up_proj"],
    "dense_4h_to_h": ["down_proj"],
}


def lora_scaling(r: int, lora_alpha: float, use_rslora: bool = False) -> float:
    """The factor the LoRA update B@A is multiplied by: alpha / r, or alpha / sqrt(r) for rsLoRA.

    The one place gluekit computes it; tests compare it with PEFT's ``layer.scaling``.
    """
    return lora_alpha / (math.sqrt(r) if use_rslora else r)


def linear_names(model) -> list[str]:
    """Sorted distinct leaf names of the model's Linear layers (what ``target_modules`` matches)."""
    import torch

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    return sorted(names)


@dataclass
class TargetResolution:
    target_modules: list[str] | str
    note: str | None = None
    mapped: dict[str, list[str]] | None = None


def resolve_targets(model, target_modules) -> TargetResolution:
    """Check ``peft_config.target_modules`` against the model; map remote-code GLM-4 names to native ones.

    Raises :class:`ConfigError` listing the model's linear layers when a name matches nothing.
    """
    if target_modules is None or target_modules == "all-linear":
        return TargetResolution(target_modules)
    wanted = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    present = set(linear_names(model))
    out, mapped, missing = [], {}, []
    for name in wanted:
        if name in present:
            out.append(name)
        elif name in REMOTE_TO_NATIVE and all(n in present for n in REMOTE_TO_NATIVE[name]):
            mapped[name] = REMOTE_TO_NATIVE[name]
            out += REMOTE_TO_NATIVE[name]
        else:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"`peft_config.target_modules`: {missing} match no layer of this model. "
            f"Its linear layers are: {', '.join(sorted(present))} (or use \"all-linear\")."
        )
    note = None
    if mapped:
        pairs = "; ".join(f"{k} -> {', '.join(v)}" for k, v in mapped.items())
        note = (f"target_modules: this is a native GLM model, so the remote-code names were mapped ({pairs}). "
                "Separate q/k/v adapters train more parameters than one adapter on the fused layer.")
    return TargetResolution(list(dict.fromkeys(out)), note, mapped or None)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters, counting meta-device tensors too."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def format_count(trainable: int, total: int) -> str:
    """The line PEFT's ``print_trainable_parameters`` prints, as a string."""
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"


def apply_peft(model, peft_config, *, verbose: bool = True):
    """Wrap ``model`` with ``peft.get_peft_model`` after resolving LoRA target names.

    Returns ``(peft_model, note)``; ``note`` explains any remote-to-native name mapping. The caller's
    ``peft_config`` is left as it was: the PEFT model gets a copy (with the mapped names; PEFT also
    writes the base model's name into the config it is given), kept as ``peft_model.peft_config["default"]``.
    """
    import copy

    from peft import LoraConfig, get_peft_model

    peft_config = copy.deepcopy(peft_config)
    note = None
    if isinstance(peft_config, LoraConfig):
        res = resolve_targets(model, peft_config.target_modules)
        note = res.note
        if res.mapped:
            peft_config.target_modules = set(res.target_modules)
    if verbose and note:
        print(note)
    with quiet_peft_wrap():
        return get_peft_model(model, peft_config), note


def with_adapters(model, peft_config, *, in_place: bool = False):
    """``model`` with PEFT's own adapter layers for ``peft_config`` injected, in a deep copy.

    ``peft.inject_adapter_in_model`` without the ``PeftModel`` wrapper, so it works on a meta-device
    model (:func:`gluekit.models.meta_model`: no weights, no memory) and creates exactly the layers
    PEFT would. ``peft_config`` is left as it was, and so is ``model`` unless ``in_place`` (for a
    model built only to be counted: a deep copy of GLM-4-9B's meta tree takes about half a second).
    Target names are used as given (map remote-code names first with :func:`resolve_targets`).
    """
    import copy

    from peft import inject_adapter_in_model

    net = model if in_place else copy.deepcopy(model)
    inject_adapter_in_model(copy.deepcopy(peft_config), net)
    return net


def lora_trainable_on(model, peft_config) -> int:
    """Trainable LoRA parameters ``peft_config`` adds to ``model`` (works on the meta device).

    Counted on :func:`with_adapters`' copy, so it counts exactly what PEFT would create.
    """
    return sum(p.numel() for n, p in with_adapters(model, peft_config).named_parameters() if "lora_" in n)
