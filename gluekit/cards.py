"""GPU cards: presets, the present card's properties, and "does it fit" with the smallest change that makes it fit.

The present card is read by :func:`present_card` through ``PROBE`` (a function returning the card
or None), so tests on a CPU can pretend to be a T4, a V100, an RTX 3090 or an A100 by replacing it.
bf16 needs compute capability 8.0 or more (Ampere and later). On cards without it (V100, T4,
RTX 20xx) GLM-4 must not train in fp16 (its activations overflow: NaN losses); fp32 compute, or a
4-bit base with float32 compute where it fits, is what to do instead.

Every peak below comes from :func:`gluekit.memory.peak_memory`, the estimate ``gluekit plan`` prints.
A plan fits when its peak is at most ``USABLE`` of the card's memory (the rest is left to the CUDA
context, the allocator's slack and the transient dequantized weight of a 4-bit layer).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

GiB = 1024 ** 3
USABLE = 0.9  # share of a card's memory a plan may use
NO_BF16 = ("this card has no bf16 (compute capability {cc} < 8.0): fp16 gives NaN losses with GLM-4. Train with fp32 "
           "compute (training_args bf16: false, fp16: false), or a 4-bit base with float32 compute where it fits "
           "(-o quantization.load_in_4bit=true -o quantization.bnb_4bit_compute_dtype=float32).")


@dataclass(frozen=True)
class Card:
    name: str
    memory: float
    """Bytes of device memory."""
    capability: tuple[int, int] | None = None
    """CUDA compute capability; None for a card given only by its memory (assumed to have bf16)."""

    @property
    def bf16(self) -> bool:
        return self.capability is None or self.capability >= (8, 0)

    @property
    def cc(self) -> str:
        return "unknown" if self.capability is None else f"{self.capability[0]}.{self.capability[1]}"

    def describe(self) -> str:
        return f"{self.name}, {self.memory / GiB:.1f} GiB, compute capability {self.cc}, bf16 {'yes' if self.bf16 else 'no'}"


PRESETS = {
    "T4": Card("Tesla T4", 16 * GiB, (7, 5)),
    "V100": Card("Tesla V100 (16 GB)", 16 * GiB, (7, 0)),
    "RTX2080TI": Card("RTX 2080 Ti", 11 * GiB, (7, 5)),
    "RTX3060": Card("RTX 3060", 12 * GiB, (8, 6)),
    "RTX3090": Card("RTX 3090", 24 * GiB, (8, 6)),
    "RTX4090": Card("RTX 4090", 24 * GiB, (8, 9)),
    "A10": Card("A10", 24 * GiB, (8, 6)),
    "A100": Card("A100 (80 GB)", 80 * GiB, (8, 0)),
    "A100-40GB": Card("A100 (40 GB)", 40 * GiB, (8, 0)),
    "H100": Card("H100", 80 * GiB, (9, 0)),
}
USUAL = (12, 16, 24, 80)  # GB of the usual cards (README's table)


def _cuda_card() -> Card | None:
    import torch

    if not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(0)
    return Card(p.name, float(p.total_memory), (p.major, p.minor))


PROBE = _cuda_card
"""The present card (None without one). Replace it to pretend to be another card."""


def present_card() -> Card | None:
    return PROBE()


def parse_card(text: str | None) -> Card | None:
    """``24GB`` / ``24`` / ``24GiB`` (a card of that memory), a preset name (``T4``, ``RTX3090``, ``A100``),
    or ``present`` / None (the card of this machine, None without one). Raises ValueError otherwise."""
    if text is None or str(text).lower() == "present":
        return present_card()
    t = str(text).strip().upper().replace(" ", "")
    if t in PRESETS:
        return PRESETS[t]
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(GB|GIB|G)?", t)
    if not m:
        raise ValueError(f"--card: expected a memory like 24GB, a card name ({', '.join(PRESETS)}) or present, got {text!r}.")
    return Card(f"{m.group(1)} GB card", float(m.group(1)) * GiB)


def _format(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


def precision_lines(card: Card, quantization: dict | None = None) -> list[str]:
    """What the card means for precision: the fp16 warning on a card without bf16."""
    lines = []
    if not card.bf16:
        lines.append(NO_BF16.format(cc=card.cc))
    return lines


def compute_dtype_problem(card: Card | None, quantization: dict | None) -> str | None:
    """A message when the config's 4-bit compute dtype is bfloat16 and the card has no bf16."""
    if card is None or card.bf16 or not quantization or quantization.get("bnb_4bit_compute_dtype") != "bfloat16":
        return None
    return (f"`quantization.bnb_4bit_compute_dtype`: {card.name} has no bf16 (compute capability {card.cc} < 8.0), "
            "got 'bfloat16'. Use float32 (fp16 gives NaN losses with GLM-4).")


@dataclass
class Option:
    change: str
    """What to change ("as written", "gradient checkpointing", ...)."""
    overrides: list[str]
    """The ``-o`` overrides that make the change."""
    peak: float
    fits: bool


@dataclass
class FitReport:
    card: Card
    options: list[Option] = field(default_factory=list)
    """The config as written first, then every change tried, in order of preference."""

    @property
    def as_written(self) -> Option:
        return self.options[0]

    @property
    def smallest(self) -> Option | None:
        """The first change (in order of preference) that fits, or None; the config itself when it fits."""
        return next((o for o in self.options if o.fits), None)

    def summary(self) -> str:
        limit = self.card.memory * USABLE
        lines = [f"card: {self.card.describe()} (a plan fits in {_format(limit)}, {USABLE:.0%} of it)"]
        lines += [f"  {o.change:70} {_format(o.peak):>11}  {'fits' if o.fits else 'too big'}" for o in self.options]
        best = self.smallest
        if best is self.as_written:
            lines.append("fits as written.")
        elif best is None:
            lines.append("does not fit, even with every change above. Use a card with more memory or several (ZeRO-3).")
        else:
            lines.append(f"does not fit as written; smallest change that fits: {best.change}: {' '.join('-o ' + o for o in best.overrides)}")
        lines += precision_lines(self.card)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        best = self.smallest
        return {"card": {"name": self.card.name, "memory": self.card.memory, "compute_capability": self.card.cc,
                         "bf16": self.card.bf16, "usable": self.card.memory * USABLE},
                "options": [{"change": o.change, "overrides": o.overrides, "peak": o.peak, "fits": o.fits} for o in self.options],
                "fits_as_written": self.as_written.fits, "smallest_change": best.change if best else None}


def fit(cfg, card: Card, model_config=None, *, dtype: str = "bfloat16", devices: int = 1) -> FitReport:
    """Does ``cfg`` (a FinetuneConfig) fit on ``card``; and with which change, each peak from the same estimator.

    Changes, in order of preference (those that change nothing the model learns first): gradient
    checkpointing; batch 1 with gradient accumulation (the same samples per optimizer step); a 4-bit
    base; max lengths halved; then their combinations.
    """
    from .memory import count_trainables, model_config_for, peak_memory, zero_stage_of
    from .quantization import resolve

    if model_config is None:
        model_config = model_config_for(None)
    trainables = count_trainables(model_config, cfg.peft_config_object())
    args = cfg.training_arguments(portable=True)
    batch, accum = args.per_device_train_batch_size, args.gradient_accumulation_steps
    ckpt = bool(args.gradient_checkpointing or args.activation_checkpointing)
    quant = resolve(cfg.quantization, bf16=card.bf16)
    four_bit = resolve({"load_in_4bit": True}, bf16=card.bf16)
    stage = zero_stage_of(cfg)
    lora = trainables.method == "LORA"

    def peak(ck, b, q, half):
        mi, mo = (cfg.max_input_length // 2, cfg.max_output_length // 2) if half else (cfg.max_input_length, cfg.max_output_length)
        return peak_memory(model_config, trainables, batch=b, seq_len=mi + mo + 1, dtype=dtype, gradient_checkpointing=ck,
                           zero_stage=stage, devices=devices, quantization=q).total

    steps = {"ckpt": ("gradient checkpointing", ["training_args.gradient_checkpointing=true"]),
             "batch1": (f"batch 1 x {batch * accum} accumulation steps",
                        ["training_args.per_device_train_batch_size=1", f"training_args.gradient_accumulation_steps={batch * accum}"]),
             "4bit": ("4-bit base", ["quantization.load_in_4bit=true"]),
             "half": (f"max lengths halved ({cfg.max_input_length // 2} + {cfg.max_output_length // 2})",
                      [f"max_input_length={cfg.max_input_length // 2}", f"max_output_length={cfg.max_output_length // 2}"])}
    usable = [k for k in ("ckpt", "batch1", "4bit", "half")
              if not (k == "ckpt" and ckpt) and not (k == "batch1" and batch == 1) and not (k == "4bit" and (quant or not lora))]
    combos = [[k] for k in usable]
    for extra in (["ckpt", "batch1"], ["ckpt", "4bit"], ["ckpt", "batch1", "4bit"], ["ckpt", "batch1", "4bit", "half"]):
        c = [k for k in extra if k in usable]
        if len(c) > 1 and c not in combos:
            combos.append(c)
    limit = card.memory * USABLE
    first = peak(ckpt, batch, quant, False)
    report = FitReport(card, [Option("as written", [], first, first <= limit)])
    for c in combos:
        p = peak(ckpt or "ckpt" in c, 1 if "batch1" in c else batch, four_bit if "4bit" in c else quant, "half" in c)
        report.options.append(Option(" + ".join(steps[k][0] for k in c), sum((steps[k][1] for k in c), []), p, p <= limit))
    return report


def usual_cards_table(cfg, model_config=None, *, dtype: str = "bfloat16", sizes=USUAL) -> str:
    """A Markdown table: for each card size, the peak as written and the smallest change that fits."""
    rows = ["| card | as written | fits? | smallest change that fits | its peak |", "|---|---|---|---|---|"]
    for gb in sizes:
        r = fit(copy.deepcopy(cfg), parse_card(f"{gb}GB"), model_config, dtype=dtype)
        best = r.smallest
        rows.append(f"| {gb} GB | {_format(r.as_written.peak)} | {'yes' if r.as_written.fits else 'no'} | "
                    f"{'-' if best is r.as_written else (best.change if best else 'none')} | "
                    f"{_format(best.peak) if best else '-'} |")
    return "\n".join(rows)


__all__ = ["Card", "PRESETS", "PROBE", "USABLE", "USUAL", "present_card", "parse_card", "precision_lines",
           "compute_dtype_problem", "Option", "FitReport", "fit", "usual_cards_table"]
