"""LoRA on GLM-4 with PEFT: target-module names, the scaling factor, parameter accounting.

GLM-4-9B-chat's remote code fuses q, k and v into one ``query_key_value`` layer; transformers'
native GLM classes (``glm-4-9b-chat-hf``, GLM-4-9B-0414) keep ``q_proj``/``k_proj``/``v_proj``. The
seed ``lora.yaml`` names the fused layer, which matches nothing in a native model; the current
official one names q/k/v, which match nothing in the remote-code model. :func:`resolve_targets`
maps either naming onto the other model and says so, with both parameter counts when it knows ``r``
(GLM-4-9B at r=8: 5,406,720 as three adapters, 2,785,280 as one on the fused layer).
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
# The other way: native names -> the remote-code model's. q, k and v map only together (one fused layer).
QKV = ("q_proj", "k_proj", "v_proj")
NATIVE_TO_REMOTE = {"o_proj": "dense", "gate_up_proj": "dense_h_to_4h", "down_proj": "dense_4h_to_h"}


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


def qkv_counts(model, r: int) -> tuple[int, int] | None:
    """LoRA parameters at rank ``r`` on q, k and v: ``(three separate adapters, one on the fused layer)``.

    Read from the model's own layers, native (``q_proj``...) or remote-code (``query_key_value``):
    per layer r x (in + out) for each adapter, so separate = r (3 h + out_qkv), fused = r (h + out_qkv).
    None when the model has neither naming.
    """
    import torch

    layers = {}
    for name, m in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(m, torch.nn.Linear) and (leaf in QKV or leaf == "query_key_value"):
            layers.setdefault(name.rsplit(".", 1)[0], []).append(m)
    if not layers:
        return None
    separate = fused = 0
    for mods in layers.values():
        width, out = mods[0].in_features, sum(m.out_features for m in mods)
        separate += r * (3 * width + out)
        fused += r * (width + out)
    return separate, fused


def resolve_targets(model, target_modules, r: int | None = None) -> TargetResolution:
    """Check ``peft_config.target_modules`` against the model; map one GLM-4 naming onto the other.

    Remote-code names (``query_key_value``, ``dense``, ``dense_h_to_4h``, ``dense_4h_to_h``) on a native
    model become ``q_proj, k_proj, v_proj``, ``o_proj``, ``gate_up_proj``, ``down_proj``; on the remote-code
    model the native names become the remote ones, q/k/v only all three together (one fused adapter).
    The note says so; given ``r`` it also gives both q/k/v parameter counts (:func:`qkv_counts`).
    Raises :class:`ConfigError` listing the model's linear layers when a name matches nothing.
    """
    if target_modules is None or target_modules == "all-linear":
        return TargetResolution(target_modules)
    wanted = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    present = set(linear_names(model))
    out, mapped, missing, partial = [], {}, [], []
    fused = "query_key_value" in present and not set(QKV) & present
    qkv_wanted = [n for n in QKV if n in wanted]
    for name in wanted:
        if name in present:
            out.append(name)
        elif name in REMOTE_TO_NATIVE and all(n in present for n in REMOTE_TO_NATIVE[name]):
            mapped[name] = REMOTE_TO_NATIVE[name]
            out += REMOTE_TO_NATIVE[name]
        elif fused and name in QKV:
            if len(qkv_wanted) < 3:
                partial.append(name)
            elif name == qkv_wanted[0]:
                mapped[", ".join(QKV)] = ["query_key_value"]
                out.append("query_key_value")
        elif name in NATIVE_TO_REMOTE and NATIVE_TO_REMOTE[name] in present:
            mapped[name] = [NATIVE_TO_REMOTE[name]]
            out.append(NATIVE_TO_REMOTE[name])
        else:
            missing.append(name)
    problems = []
    if partial:
        problems.append(f"`peft_config.target_modules`: {partial} name part of this remote-code model's fused query_key_value "
                        f"layer, got {wanted}. One adapter on query_key_value trains q, k and v together: write "
                        "[query_key_value] (or all three of q_proj, k_proj, v_proj).")
    if missing:
        problems.append(f"`peft_config.target_modules`: {missing} match no layer of this model. "
                        f"Its linear layers are: {', '.join(sorted(present))} (or use \"all-linear\").")
    if problems:
        raise ConfigError(problems)
    return TargetResolution(list(dict.fromkeys(out)), _mapping_note(model, mapped, fused, r), mapped or None)


def _mapping_note(model, mapped: dict, fused: bool, r: int | None) -> str | None:
    if not mapped:
        return None
    pairs = "; ".join(f"{k} -> {', '.join(v)}" for k, v in mapped.items())
    counts = qkv_counts(model, r) if r and ("query_key_value" in mapped or ", ".join(QKV) in mapped) else None
    if fused:
        note = f"target_modules: this is the remote-code GLM-4 model (q, k and v fused), so the native names were mapped ({pairs})."
        if counts:
            return (f"{note} At r={r} that is ONE adapter on the fused layer: {counts[1]:,d} trainable parameters; "
                    f"three separate q/k/v adapters on a native model would have {counts[0]:,d}.")
        return note + " One adapter on the fused layer trains fewer parameters than separate q/k/v adapters."
    note = f"target_modules: this is a native GLM model, so the remote-code names were mapped ({pairs})."
    if counts:
        return (f"{note} At r={r} that is three adapters: {counts[0]:,d} trainable parameters; "
                f"the remote-code model's one fused query_key_value adapter has {counts[1]:,d}.")
    return note + " Separate q/k/v adapters train more parameters than one adapter on the fused layer."


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
        res = resolve_targets(model, peft_config.target_modules, peft_config.r)
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
