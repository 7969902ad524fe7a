"""The one-shot GPU check: GLM-4-9B-shaped models trained, evaluated and chatted with on one GPU.

``bash scripts/gpu-check.sh`` (= ``python -m benchmarks gpu``): one command, no hub access, under
8 minutes on one GPU (:data:`TIME_BUDGET_S`; cases that would start after it are skipped and
named). For each family, a model of GLM-4-9B's shape is built with random weights in bf16 directly
on the GPU (no download): transformers' ``GlmForCausalLM`` (glm-4-9b-chat-hf) and
``Glm4ForCausalLM`` (GLM-4-9B-0414). Each case trains lora.yaml's settings (batch 1, lora.yaml's
512 + 512 + 1 = 1,025 tokens per row, LoRA r 8 on q/k/v with dropout 0.1, bf16) through gluekit's
own Trainer (``gluekit.trainer.build_trainer``, the Trainer ``gluekit train`` runs) for
:data:`STEPS` steps after :data:`WARMUP`, with gradient checkpointing off / on and packing off / on,
and records the peak memory (``torch.cuda.max_memory_allocated``), tokens/s and model FLOPs
utilisation next to ``gluekit plan``'s estimate (``gluekit.memory.plan_memory``). Then, on the
trained model, a generation evaluation (gluekit's ``generate_replies`` against the reference's
``Seq2SeqTrainer.predict``, ``benchmarks.bench_eval``) and a chat reply, both on the GPU.

Two more cases fit named cards: GLM-4-9B LoRA at 2 x 1,024 tokens with checkpointing within
24 GiB, and QLoRA (4-bit base, ``gluekit.models.load_model``'s quantization) at lora.yaml's length
within 12 GiB; the QLoRA case is skipped with the reason when bitsandbytes or the quantization
option is missing. A case whose plan exceeds the card's memory is skipped with the plan's number;
one that runs out of memory is reported as such.

Rows are random tokens, every token but the first a label (the plan's bound), so no tokenizer of
GLM-4's vocabulary is needed: prompts for the evaluation and chat come from the embedded tiny
tokenizer (its ids are valid GLM-4 ids), and a random model never stops early, so every reply is
``max_new_tokens`` long.

CPU mode (``--quick``, and ``tests/test_bench_gpu.py`` in the test suite): the same code path on
tiny shapes of both families, a couple of steps, nothing written.
"""
from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field

from .common import ROOT, Row

GiB = 1024 ** 3
LORA_YAML = ROOT / "configs" / "lora.yaml"
STEPS, WARMUP = 30, 3             # timed steps per case, after the warm-up steps
EVAL_PROMPTS, EVAL_NEW_TOKENS = 16, 64
TIME_BUDGET_S = 7 * 60            # no case starts after this (the check must end within 8 minutes)
QUANTIZATION = "4bit"             # gluekit.models.load_model(quantization=...) for the QLoRA case
QUANTIZATION_CONFIGS = {"4bit": {"load_in_4bit": True}}  # the config's `quantization:` mapping (nf4 defaults)
# bf16 dense tensor-core peak from the datasheets, FLOP/s (no sparsity); the first name that occurs wins
DATASHEET_BF16 = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12))
EXTRA: dict = {}


@dataclass(frozen=True)
class Case:
    family: str
    """``glm`` (glm-4-9b-chat-hf, GlmForCausalLM) or ``glm4`` (GLM-4-9B-0414, Glm4ForCausalLM)."""
    input_length: int = 512       # lora.yaml's max_input_length
    output_length: int = 512      # lora.yaml's max_output_length
    gradient_checkpointing: bool = False
    packing: bool = False
    quantization: str | None = None
    budget_gib: float | None = None
    """The card memory this case must fit (a row of its own), or None."""

    @property
    def seq_len(self) -> int:
        return self.input_length + self.output_length + 1  # gluekit's max_length, as FinetuneConfig computes it

    @property
    def name(self) -> str:
        what = "QLoRA (4-bit base)" if self.quantization else "LoRA"
        return (f"{FAMILY_TITLES[self.family]} {what}, 1 x {self.seq_len} tokens, checkpointing "
                f"{'on' if self.gradient_checkpointing else 'off'}, packing {'on' if self.packing else 'off'}")


FAMILY_TITLES = {"glm": "glm-4-9b-chat-hf (GlmForCausalLM)", "glm4": "GLM-4-9B-0414 (Glm4ForCausalLM)"}
CASES = [Case(f, gradient_checkpointing=ckpt, packing=pack)
         for f in ("glm", "glm4") for ckpt in (False, True) for pack in (False, True)]
CASES += [Case("glm", 1024, 1024, gradient_checkpointing=True, budget_gib=24),
          Case("glm", gradient_checkpointing=True, quantization=QUANTIZATION, budget_gib=12)]


def quick_cases() -> list[Case]:
    """CPU mode: every kind of case on tiny shapes (32 + 31 + 1 = 64 tokens a row)."""
    return [Case(f, 32, 31, gradient_checkpointing=ckpt, packing=pack)
            for f, ckpt, pack in (("glm", False, False), ("glm", False, True), ("glm4", True, True))] + [
        Case("glm", 64, 63, gradient_checkpointing=True, budget_gib=24),
        Case("glm", 32, 31, gradient_checkpointing=True, quantization=QUANTIZATION, budget_gib=12)]


# ---------------------------------------------------------------- models of each family


def model_config(family: str, tiny: bool):
    """GLM-4-9B's shape of ``family`` (tiny: the embedded tiny GLM's shape in that family's class)."""
    from transformers import Glm4Config

    from gluekit.models import glm4_9b_config
    from gluekit.tiny import tiny_model_dir

    if tiny:
        from transformers import AutoConfig

        base = AutoConfig.from_pretrained(str(tiny_model_dir()))
        if family == "glm":
            return base
        shape = {k: getattr(base, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                               "num_attention_heads", "num_key_value_heads", "head_dim",
                                               "pad_token_id", "eos_token_id")}
        return Glm4Config(**shape, tie_word_embeddings=False, partial_rotary_factor=0.5, attention_bias=True)
    if family == "glm":
        return glm4_9b_config()
    # GLM-4-9B-0414: glm-4-9b-chat's widths, two more norms per layer, 32K context, eps 1e-5
    nine = glm4_9b_config()
    return Glm4Config(vocab_size=nine.vocab_size, hidden_size=nine.hidden_size, intermediate_size=nine.intermediate_size,
                      num_hidden_layers=nine.num_hidden_layers, num_attention_heads=nine.num_attention_heads,
                      num_key_value_heads=nine.num_key_value_heads, head_dim=nine.head_dim, tie_word_embeddings=False,
                      max_position_embeddings=32768, rms_norm_eps=1e-5, partial_rotary_factor=0.5, attention_bias=True)


def build_model(config, device):
    """A model of ``config`` with random weights, built directly on ``device`` in its dtype (bf16 off the CPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    from gluekit.device import dtype_for

    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype_for(device)).eval()


def matmul_params(model) -> int:
    """Parameters that are matrix-product weights per token: every Linear (lm_head included), not embeddings or norms."""
    import torch

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and "lora_" not in type(m).__name__)


def model_flops_per_token(config, n_matmul: int, seq_len: int) -> float:
    """Training FLOPs per token of a LoRA step, model FLOPs (recomputation not counted).

    Linear layers: 2 per weight forward + 2 backward for the input gradient; the frozen base weights
    get no weight gradient (LoRA's own matrices are negligible). Causal attention, per layer: scores and
    weighted values, 2 x 2 x nq x (seq_len / 2) forward, twice that backward.
    """
    nq = config.num_attention_heads * config.head_dim
    return 4.0 * n_matmul + 3 * config.num_hidden_layers * 4 * nq * seq_len / 2


def card_peak_flops(device) -> tuple[float | None, float | None, str | None]:
    """(datasheet bf16 peak, measured bf16 matmul FLOP/s, card name) of a CUDA device; Nones on the CPU."""
    import torch

    if torch.device(device).type != "cuda":
        return None, None, None
    name = torch.cuda.get_device_name(device)
    sheet = next((v for k, v in DATASHEET_BF16 if k in name), None)
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    t0, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize(device)
    measured = 2 * n ** 3 * reps / (time.perf_counter() - t0)
    del a, b
    return sheet, measured, name


# ---------------------------------------------------------------- one training case


def case_config(case: Case, out_dir: str, steps: int, on_gpu: bool, new_tokens: int = EVAL_NEW_TOKENS):
    """lora.yaml with the case's lengths, checkpointing and packing; no eval, no saving, a log line per step."""
    from gluekit.config import load_config

    overrides = {"max_input_length": case.input_length, "max_output_length": case.output_length,
                 "packing": case.packing, "data_config.test_file": None, "data_config.val_file": None,
                 "training_args.max_steps": steps, "training_args.logging_steps": 1,
                 "training_args.eval_strategy": "no", "training_args.save_strategy": "no",
                 "training_args.output_dir": out_dir, "training_args.dataloader_num_workers": 0,
                 "training_args.gradient_checkpointing": case.gradient_checkpointing,
                 "training_args.report_to": "none", "training_args.disable_tqdm": True,
                 "training_args.log_level": "error", "training_args.generation_config.max_new_tokens": new_tokens}
    if on_gpu:
        overrides["training_args.bf16"] = True
    return load_config(LORA_YAML, overrides)


def random_rows(n: int, seq_len: int, vocab: int):
    """``n`` training rows of ``seq_len`` random token ids; every token but the first is a label."""
    import datasets
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab, (n, seq_len), generator=g).tolist()
    return datasets.Dataset.from_dict({"input_ids": ids, "labels": [[-100] + r[1:] for r in ids]})


def _step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall seconds of every optimizer step (the GPU's queue drained at both ends)."""

        def __init__(self):
            self.seconds: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            _sync()
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _sync()
            self.seconds.append(time.perf_counter() - self._t)

    return StepTimer()


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_reset(device) -> int:
    """Reset the peak-memory counter; returns the bytes allocated now."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    from .bench_memory import _reset_peak, _status_kib

    _reset_peak()
    return _status_kib()["VmRSS"] * 1024


def _peak(device, since: int, resident: int) -> int:
    """Peak bytes since :func:`_peak_reset` (which returned ``since``): torch.cuda.max_memory_allocated;
    on the CPU the rise of the process's VmHWM plus ``resident``, the bytes of the weights already there."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    from .bench_memory import _status_kib

    return _status_kib()["VmHWM"] * 1024 - since + resident


class Skip(Exception):
    """A case that is not run here, with the reason."""


@dataclass
class CaseResult:
    case: Case
    plan_bytes: float | None
    peak_bytes: float
    tokens_per_s: float
    step_s: float
    losses: list[float]
    model_flops_per_token: float
    details: dict = field(default_factory=dict)


def train_case(case: Case, model, tok, device, steps: int, warmup: int, tmp: str) -> tuple[CaseResult, object]:
    """Train ``model`` (a base model, changed in place: wrapped with LoRA) as ``case`` says. Returns the
    result and the trained PEFT model (the caller unloads its adapter before the next case)."""
    from transformers import set_seed

    import torch

    from gluekit.lora import apply_peft
    from gluekit.memory import plan_memory
    from gluekit.train import PreparedData
    from gluekit.trainer import build_trainer, trainer_arguments

    on_gpu = str(device).startswith("cuda")
    cfg = case_config(case, tmp, warmup + steps, on_gpu)
    data = PreparedData(random_rows(warmup + steps, cfg.max_length, model.config.vocab_size), report=None)
    plan = None
    if not case.quantization:
        plan = plan_memory(cfg, model.config, dtype=str(model.dtype).replace("torch.", "")).applies.total
    card = torch.cuda.get_device_properties(device).total_memory if torch.device(device).type == "cuda" else None
    if plan and card and plan > 1.05 * card:
        raise Skip(f"the plan's peak, {plan / GiB:.2f} GiB, exceeds the card's {card / GiB:.1f} GiB")
    args = trainer_arguments(cfg, model)
    set_seed(args.seed)  # as gluekit.train.train: the LoRA matrices are drawn when PEFT wraps the model
    net, _ = apply_peft(model, cfg.peft_config_object(), verbose=False)
    timer = _step_timer()
    trainer = build_trainer(cfg, net, tok, data, print_logs=False, callbacks=[timer], args=args)
    _sync()
    since = _peak_reset(device)
    trainer.train()
    _sync()
    peak = _peak(device, since, sum(p.numel() * p.element_size() for p in model.parameters()))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    timed = timer.seconds[warmup:]
    step_s = statistics.median(timed)
    flops = model_flops_per_token(model.config, matmul_params(model), cfg.max_length)
    res = CaseResult(case, plan, peak, cfg.max_length / step_s, step_s, losses, flops,
                     {"step_seconds": [round(s, 4) for s in timer.seconds], "tokens_per_row": cfg.max_length,
                      "gradient_checkpointing": case.gradient_checkpointing, "packing": case.packing})
    del trainer  # with it the optimizer and its states
    return res, net


def release(net):
    """The base model of a trained PEFT model, adapters removed, checkpointing off, memory given back."""
    from gluekit.device import free_memory

    base = net.unload()
    if getattr(base, "is_gradient_checkpointing", False):
        base.gradient_checkpointing_disable()
    if hasattr(base, "disable_input_require_grads"):
        try:
            base.disable_input_require_grads()
        except AttributeError:  # no hook was registered
            pass
    free_memory()
    return base


# ---------------------------------------------------------------- evaluation and chat


def generation_rows(tok, cfg, n: int) -> list[dict]:
    """``n`` demo dev prompts (short and long ones), built with lora.yaml's combine and lengths."""
    from gluekit.data import build_eval_rows, read_jsonl
    from gluekit.tiny import DEMO_DIR

    rows = build_eval_rows(read_jsonl(DEMO_DIR / "dev.jsonl"), tok, cfg.combine, cfg.max_input_length,
                           cfg.max_output_length)
    rows = sorted(rows, key=lambda r: len(r["prompt_ids"]))
    step = max(1, len(rows) // n)
    return rows[::step][:n]


def eval_and_chat(title: str, net, tok, cfg, tmp: str, n_prompts: int, chat_tokens: int) -> tuple[Row, dict]:
    """A generation evaluation (gluekit vs the reference's predict) and one chat reply, on ``net``'s device."""
    from gluekit.device import model_device, where
    from gluekit.generate import chat

    from .bench_eval import compare

    rows = generation_rows(tok, cfg, n_prompts)
    row = compare(f"generation eval, {title}, random weights (never stops early)", net, tok, rows, cfg, 1, tmp)
    _sync()
    t0 = time.perf_counter()
    reply = chat(net, tok, "你好,请介绍一下杭州。", max_new_tokens=chat_tokens)
    _sync()
    facts = {"chat_seconds": round(time.perf_counter() - t0, 3), "chat_reply_chars": len(reply),
             "model": where(net), "inputs_on": str(model_device(net))}
    return row, facts


# ---------------------------------------------------------------- rows


def memory_row(r: CaseResult, sheet: float | None, measured: float | None, measured_by: str) -> Row:
    """Measured peak next to the plan's estimate, with tokens/s and MFU in the notes."""
    achieved = r.tokens_per_s * r.model_flops_per_token
    mfu = [f"{achieved / 1e12:.1f} model TFLOP/s"]
    if sheet:
        mfu.append(f"MFU {100 * achieved / sheet:.1f}% of the datasheet's {sheet / 1e12:.0f}")
    if measured:
        mfu.append(f"{100 * achieved / measured:.1f}% of a measured bf16 matmul ({measured / 1e12:.0f} TFLOP/s)")
    notes = (f"{r.tokens_per_s:,.0f} tokens/s (median step {1000 * r.step_s:.0f} ms); {'; '.join(mfu)}; "
             f"loss {r.losses[0]:.2f} -> {r.losses[-1]:.2f}")
    plan = r.plan_bytes or float("nan")
    ratio = plan / r.peak_bytes if r.plan_bytes else float("nan")
    return Row(name=f"peak memory, {r.case.name}", baseline="gluekit plan (gluekit.memory.plan_memory)",
               metric=f"GiB, {measured_by}", baseline_value=plan / GiB, gluekit_value=r.peak_bytes / GiB,
               ratio=ratio, target="within 15%", met=bool(r.plan_bytes) and abs(ratio - 1) <= 0.15, same_output=None,
               notes=notes, details={**r.details, "losses": r.losses, "tokens_per_s": r.tokens_per_s,
                                     "model_flops_per_token": r.model_flops_per_token,
                                     "model_tflops": achieved / 1e12, "mfu_datasheet": achieved / sheet if sheet else None,
                                     "mfu_measured_matmul": achieved / measured if measured else None})


def budget_row(r: CaseResult, measured_by: str) -> Row:
    """Does the case fit its card: measured peak against ``budget_gib``."""
    budget = r.case.budget_gib * GiB
    return Row(name=f"fits a {r.case.budget_gib:g} GiB card, {r.case.name}", baseline="card memory",
               metric=f"GiB, {measured_by}", baseline_value=budget / GiB, gluekit_value=r.peak_bytes / GiB,
               ratio=budget / r.peak_bytes, target=">= 1.0x (fits)", met=r.peak_bytes <= budget, same_output=None,
               notes=f"{r.tokens_per_s:,.0f} tokens/s; the CUDA context (about 0.5 GiB) comes on top of the allocated peak")


def packing_row(off: CaseResult, on: CaseResult) -> Row:
    ratio = on.tokens_per_s / off.tokens_per_s
    return Row(name=f"packing on vs off, {FAMILY_TITLES[on.case.family]}, checkpointing "
                    f"{'on' if on.case.gradient_checkpointing else 'off'}",
               baseline="the same case with packing off", metric="tokens/s", baseline_value=off.tokens_per_s,
               gluekit_value=on.tokens_per_s, ratio=ratio, target=">= 1.0x (no slower)", met=ratio >= 0.98, same_output=None,
               notes="batch 1: a packed row is the same single sample with position ids and no attention mask; "
                     "packing's gain needs several samples per batch")


# ---------------------------------------------------------------- the check


def quantization_problem() -> str | None:
    """Why the QLoRA case cannot run here, or None."""
    import importlib.util
    import inspect

    from gluekit.models import load_model

    if "quantization" not in inspect.signature(load_model).parameters:
        return "gluekit.models.load_model has no quantization argument in this version"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed (pip install bitsandbytes)"
    return None


def run(quick: bool) -> list[Row]:
    """GPU mode on a CUDA machine; ``quick`` (or the test suite): CPU mode, tiny shapes, nothing written."""
    import dataclasses
    import logging
    import warnings

    import torch

    from gluekit.device import free_memory
    from gluekit.models import load_model, load_tokenizer
    from gluekit.quiet import transformers_logs

    if not quick and not torch.cuda.is_available():
        raise SystemExit("python -m benchmarks gpu: no CUDA device here. It measures a GPU; `bash scripts/gpu-check.sh "
                         "--quick` runs its CPU mode (tiny shapes, nothing written).")
    device = torch.device("cpu") if quick else torch.device("cuda", 0)
    measured_by = "weights + peak RSS rise (VmHWM)" if quick else "torch.cuda.max_memory_allocated"
    cases = quick_cases() if quick else CASES
    steps, warmup, n_prompts, new_tokens = (2, 1, 4, 4) if quick else (STEPS, WARMUP, EVAL_PROMPTS, EVAL_NEW_TOKENS)
    started = time.monotonic()
    sheet, measured, card = card_peak_flops(device)
    tok = load_tokenizer()
    rows: list[Row] = []
    skipped: list[str] = []
    results: dict[Case, CaseResult] = {}
    facts: dict = {"card": card, "datasheet_bf16_flops": sheet, "measured_bf16_matmul_flops": measured}

    def out_of_time() -> bool:
        return time.monotonic() - started > TIME_BUDGET_S

    def record(res: CaseResult) -> None:
        results[res.case] = res
        rows.append(memory_row(res, sheet, measured, measured_by))
        if res.case.budget_gib:
            rows.append(budget_row(res, measured_by))

    with warnings.catch_warnings(), transformers_logs(logging.ERROR), tempfile.TemporaryDirectory() as tmp:
        # transformers 5 renames gradient_checkpointing (FutureWarning at every use); nothing to act on here
        warnings.filterwarnings("ignore", category=FutureWarning)
        # 1) each family: one random model, every bf16 case on it (LoRA wrapped and unloaded in turn)
        for family in dict.fromkeys(c.family for c in cases if not c.quantization):
            base, evaluated = None, False
            for case in [c for c in cases if c.family == family and not c.quantization]:
                if out_of_time():
                    skipped.append(f"{case.name}: not started, the check's {TIME_BUDGET_S} s were used")
                    continue
                if base is None:
                    base = build_model(model_config(family, tiny=quick), device)
                try:
                    res, net = train_case(case, base, tok, device, steps, warmup, tmp)
                except Skip as e:
                    skipped.append(f"{case.name}: {e}")
                    continue
                except torch.OutOfMemoryError as e:
                    skipped.append(f"{case.name}: out of memory ({str(e).splitlines()[0][:120]})")
                    free_memory()
                    continue
                record(res)
                if not evaluated:  # 2) evaluate and chat with the model just trained, on its device
                    cfg = case_config(case, tmp, 1, device.type == "cuda", new_tokens)
                    row, chat_facts = eval_and_chat(FAMILY_TITLES[family], net, tok, cfg, tmp, n_prompts, new_tokens)
                    rows.append(row)
                    facts[f"chat, {FAMILY_TITLES[family]}"] = chat_facts
                    evaluated = True
                base = release(net)
                del net
            del base
            free_memory()
        # 3) packing on against off, for every pair of cases that differ only in packing
        for case, on in results.items():
            off = results.get(dataclasses.replace(case, packing=False))
            if case.packing and off is not None:
                rows.append(packing_row(off, on))
        # 4) QLoRA: a random model saved, then loaded 4-bit as gluekit.models.load_model loads it
        for case in [c for c in cases if c.quantization]:
            problem = quantization_problem() or (f"not started, the check's {TIME_BUDGET_S} s were used"
                                                 if out_of_time() else None)
            if problem:
                skipped.append(f"{case.name}: skipped, {problem}")
                continue
            folder = f"{tmp}/{case.family}-random"
            build_model(model_config(case.family, tiny=quick), device).save_pretrained(folder, max_shard_size="2GB")
            tok.save_pretrained(folder)
            free_memory()
            try:
                base = load_model(folder, quantization=QUANTIZATION_CONFIGS[case.quantization], device=device)
                res, net = train_case(case, base, tok, device, steps, warmup, tmp)
                record(res)
                del net
            except (Skip, torch.OutOfMemoryError) as e:
                skipped.append(f"{case.name}: {str(e).splitlines()[0][:160]}")
            base = None
            free_memory()
    if device.type == "cuda":
        facts["card_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / GiB, 1)
    facts["seconds"] = round(time.monotonic() - started, 1)
    for line in skipped:
        print(f"  skipped: {line}", flush=True)
    for k, v in facts.items():
        if k.startswith("chat"):
            print(f"  {k}: {v['model']}, inputs on {v['inputs_on']}, {v['chat_seconds']} s", flush=True)
    EXTRA.clear()
    EXTRA["facts"] = facts
    EXTRA["skipped"] = skipped
    EXTRA["notes"] = (f"Random-weight GLM-4-9B shapes in bf16 on {card or device}; lora.yaml's LoRA (r 8, q/k/v, dropout 0.1), "
                      f"batch 1, {steps} timed steps after {warmup}; tokens/s counts every token of the row. "
                      f"{facts['seconds']} s in all." + (f" Skipped: {'; '.join(skipped)}." if skipped else ""))
    return rows


__all__ = ["Case", "CASES", "quick_cases", "model_config", "build_model", "model_flops_per_token", "train_case",
           "eval_and_chat", "run"]
