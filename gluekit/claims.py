"""A popular Chinese explanation of ``lora.yaml``, checked claim by claim.

Each claim below is a paraphrase of a statement that explanation makes, stored as data, with one
check function that COMPUTES its verdict with gluekit and transformers (a tokenizer, a plan, a
20-step run of the tiny GLM, PyTorch's DataLoader, accelerate's sharding...). Nothing here
hard-codes a verdict: change the library and a verdict may change with it.

Verdicts: ``holds`` (the code does what the claim says), ``wrong`` (it does not), ``partly``
(true as far as it goes, but it leaves out something that matters).

Also here: a model of two decisions of GLM-4's reference ``finetune.py`` that gluekit fixes (the
``combine: True`` evaluation prompt, the resume word ``no``), written from the documented facts so
notebooks can put them next to gluekit's behaviour.

Checks are cheap (a few seconds each); the checks that need a real run share one 20-step training
of the tiny GLM in a temporary folder, done once per process.
"""
from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import shipped_config

VERDICTS = ("holds", "wrong", "partly")
LORA_YAML = shipped_config("lora.yaml")  # package data: found the same way installed or in the repository
TINY_YAML = shipped_config("tiny.yaml")

# The two-turn chat the explanation uses as its example for `combine`.
SEED_CHAT = [
    {"role": "user", "content": "你好,今天的天气怎么样?"},
    {"role": "assistant", "content": "今天的天气很好,适合出门。"},
    {"role": "user", "content": "那我应该穿什么衣服呢?"},
    {"role": "assistant", "content": "你可以穿轻便的衣服,比如T恤和短裤。"},
]


@dataclass(frozen=True)
class Claim:
    """One statement of the explanation (paraphrased), and the ``lora.yaml`` field it is about."""

    id: str
    field: str
    claim_zh: str
    claim_en: str


@dataclass(frozen=True)
class ClaimCheck:
    """The computed verdict on one claim."""

    id: str
    claim_zh: str
    claim_en: str
    verdict: str
    evidence: str
    field: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def __str__(self) -> str:
        return f"[{self.verdict}] {self.id} ({self.field})\n  claim: {self.claim_en}\n  evidence: {self.evidence}"


CLAIMS: list[Claim] = [
    Claim("combine_concatenates", "combine",
          "combine: True 表示把输入和输出拼成一条序列(形如 [CLS] 问题 [SEP] 回答 [EOS]),False 表示不拼接。",
          "combine: True joins input and output into one sequence (like [CLS] question [SEP] answer [EOS]); False keeps them apart."),
    Claim("lengths_count_characters", "max_input_length",
          "max_input_length / max_output_length 以字符计,例如 11 个字的问题远低于 512 的上限。",
          "max_input_length / max_output_length count characters; an 11-character question is far below the 512 limit."),
    Claim("input_cut_to_first_512", "max_input_length",
          "训练时超过 512 的输入被截成前 512,输出同理。",
          "In training, an input longer than 512 is cut to its first 512, and the output likewise."),
    Claim("max_steps_stops_training", "training_args.max_steps",
          "无论还剩多少个 epoch,训练到第 3000 步就停止。",
          "Training stops at step 3000, however many epochs that leaves unfinished."),
    Claim("update_is_lr_times_gradient", "training_args.learning_rate",
          "每一步的更新是 w' = w - learning_rate × g,步长就是 0.0005 倍梯度。",
          "Each step updates w' = w - learning_rate * g: the step is 0.0005 times the gradient."),
    Claim("two_devices_two_samples", "training_args.per_device_train_batch_size",
          "两张 GPU、每卡批大小 1 时,一步共处理 2 条样本。",
          "With two GPUs and a per-device batch of 1, one step processes 2 samples."),
    Claim("workers_are_threads", "training_args.dataloader_num_workers",
          "dataloader_num_workers: 16 表示用 16 个线程并行读取数据。",
          "dataloader_num_workers: 16 means 16 threads read the data in parallel."),
    Claim("unused_columns_kept", "training_args.remove_unused_columns",
          "remove_unused_columns: false 时,模型用不到的列(如 extra_info)也留在数据集中。",
          "With remove_unused_columns: false, columns the model does not use (such as extra_info) stay in the data set."),
    Claim("checkpoints_every_500", "training_args.save_steps",
          "save_steps 500、max_steps 3000 时,在第 500、1000 …… 3000 步各存一个检查点。",
          "With save_steps 500 and max_steps 3000, checkpoints are saved at steps 500, 1000, ... 3000."),
    Claim("output_dir_holds_model", "training_args.output_dir",
          "output_dir 用来保存模型和检查点。",
          "output_dir is where the model and the checkpoints are saved."),
    Claim("lr_constant_between_checkpoints", "training_args.learning_rate",
          "第 1 步到第 1000 步学习率一直是 0.0005,保存检查点前后不变。",
          "The learning rate stays 0.0005 from step 1 through step 1000, unchanged across checkpoints."),
    Claim("log_level_info_logs_progress", "training_args.log_level",
          "log_level: info 记录 info 及以上的日志,包括训练进度、损失值、保存检查点等。",
          "log_level: info records messages at info level and above: progress, loss values, checkpoint saves."),
    Claim("logs_every_10_steps", "training_args.logging_steps",
          "logging_strategy: steps 加 logging_steps: 10,每 10 步记录一次日志。",
          "logging_strategy: steps with logging_steps: 10 writes a log record every 10 steps."),
    Claim("log_line_format", "training_args.logging_steps",
          "第 10 步的日志是一行 [INFO] Step 10: loss=0.5432 这样的文本。",
          "The log at step 10 is a text line like [INFO] Step 10: loss=0.5432."),
    Claim("eval_every_500", "training_args.eval_steps",
          "eval_strategy: steps 加 eval_steps: 500,每 500 步评估一次。",
          "eval_strategy: steps with eval_steps: 500 evaluates every 500 steps."),
    Claim("eval_sees_8_samples", "training_args.per_device_eval_batch_size",
          "两张 GPU、每卡评估批大小 4 时,每次评估一共评估 8 条样本。",
          "With two GPUs and an eval batch of 4 per device, each evaluation evaluates 8 samples in all."),
    Claim("eval_reports_loss", "training_args.eval_strategy",
          "评估完成后记录的结果里有损失值,如 eval_loss=0.4567。",
          "Each evaluation records a loss value such as eval_loss=0.4567."),
    Claim("predict_generates_text", "training_args.predict_with_generate",
          "predict_with_generate: true 时,评估和预测让模型生成文本,而不只是计算损失。",
          "With predict_with_generate: true, evaluation and prediction make the model generate text instead of only computing a loss."),
    Claim("max_new_tokens_caps_replies", "training_args.generation_config.max_new_tokens",
          "generation_config 的 max_new_tokens: 512 表示每次最多生成 512 个新标记。",
          "generation_config.max_new_tokens: 512 caps each generated reply at 512 new tokens."),
    Claim("lora_alpha_is_scaling", "peft_config.lora_alpha",
          "lora_alpha 就是 LoRA 的缩放因子。",
          "lora_alpha is LoRA's scaling factor."),
]
CLAIMS_BY_ID = {c.id: c for c in CLAIMS}


def _result(claim_id: str, verdict: str, evidence: str) -> ClaimCheck:
    c = CLAIMS_BY_ID[claim_id]
    return ClaimCheck(c.id, c.claim_zh, c.claim_en, verdict, evidence, c.field)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


# ---------------------------------------------------------------- shared pieces

@functools.lru_cache(maxsize=None)
def _tokenizer():
    from .models import load_tokenizer

    return load_tokenizer()


@functools.lru_cache(maxsize=None)
def _lora_cfg():
    from .config import load_config

    return load_config(LORA_YAML)


def _lora_plan(num_samples: int = 600, num_devices: int = 1, **overrides):
    from .config import load_config
    from .plan import make_plan

    cfg = load_config(LORA_YAML, {f"training_args.{k}": v for k, v in overrides.items()}) if overrides else _lora_cfg()
    return make_plan(cfg.training_arguments(), num_samples, num_devices)


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@dataclass
class ShortRun:
    """A 20-step run of the tiny GLM with lora.yaml's logging/eval settings scaled down."""

    config: object
    result: object
    output_dir: Path
    printed: list[str]
    """Lines the Trainer printed on stdout (its PrinterCallback)."""
    log_messages: list[tuple[str, str]]
    """(level, message) of every transformers log record at log_level info."""

    @property
    def log_history(self) -> list[dict]:
        return self.result.trainer.state.log_history


SHORT_RUN_OVERRIDES = {
    "training_args.max_steps": 20, "training_args.logging_steps": 10, "training_args.save_steps": 10,
    "training_args.eval_steps": 20, "training_args.per_device_eval_batch_size": 4,
    "training_args.generation_config.max_new_tokens": 4, "training_args.log_level": "info",
    "data_config.test_file": None,
}


@functools.lru_cache(maxsize=None)
def short_run() -> ShortRun:
    """Train the tiny GLM 20 steps (log every 10, save every 10, evaluate at 20 with batch 4).

    The Trainer's own printer stays on (its stdout lines are captured), and transformers' log
    records at ``log_level: info`` are captured instead of going to stderr.
    """
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    from .config import load_config
    from .tiny import DEMO_DIR
    from .train import train

    import atexit
    import shutil

    tmp = tempfile.mkdtemp(prefix="gluekit-claims-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # the run lives as long as the process
    out = Path(tmp) / "run"
    cfg = load_config(TINY_YAML, {**SHORT_RUN_OVERRIDES, "training_args.output_dir": str(out)}, data_dir=DEMO_DIR)
    handler = _ListHandler()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_default_handler()
    hf_logging.add_handler(handler)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            # gluekit's own log lines off; the Trainer's printer (its default with tqdm off) on
            result = train(cfg, DEMO_DIR, print_logs=False, callbacks=[PrinterCallback()])
    finally:
        hf_logging.remove_handler(handler)
        hf_logging.enable_default_handler()
        hf_logging.set_verbosity(verbosity)
    messages = [(r.levelname, r.getMessage()) for r in handler.records]
    return ShortRun(cfg, result, out, buf.getvalue().splitlines(), messages)


# ---------------------------------------------------------------- the checks

def check_combine_concatenates() -> ClaimCheck:
    """Encode the seed's own chat both ways and compare sequences and targets."""
    from .data import IGNORE_INDEX, encode_conversation

    tok = _tokenizer()
    enc = {c: encode_conversation(SEED_CHAT, tok, combine=c) for c in (True, False)}
    same_ids = enc[True]["input_ids"] == enc[False]["input_ids"]
    ids = enc[True]["input_ids"]
    text = tok.decode(ids)
    has_all = all(m["content"] in text for m in SEED_CHAT)
    bert_tokens = [t for t in ("[CLS]", "[SEP]", "[EOS]") if tok.convert_tokens_to_ids(t) not in (None, tok.unk_token_id)]
    start = tok.convert_ids_to_tokens(ids[:2])
    trained = {}
    for c, e in enc.items():
        target = tok.decode([t for t in e["labels"] if t != IGNORE_INDEX])
        trained[c] = sum(m["content"] in target for m in SEED_CHAT if m["role"] == "assistant")
    n_replies = sum(m["role"] == "assistant" for m in SEED_CHAT)
    concat_both = same_ids and has_all
    verdict = "wrong" if concat_both and not bert_tokens and trained[True] != trained[False] else "holds"
    return _result("combine_concatenates", verdict, (
        f"both settings give one sequence holding every message ({len(ids)} tokens, identical input_ids: {same_ids}), "
        f"starting {''.join(start)} with role tokens, no [CLS]/[SEP]/[EOS] in the vocabulary ({bert_tokens or 'none found'}); "
        f"what changes is the loss: combine=True trains {trained[True]} of {n_replies} replies, "
        f"combine=False trains {trained[False]} of {n_replies}."))


LONG_QUESTION = "请介绍一下这座城市的历史和文化。" * 40  # 640 characters


def check_lengths_count_characters() -> ClaimCheck:
    """Count characters and tokens; cut an eval prompt with max_input_length 512."""
    from .data import eval_examples

    tok = _tokenizer()
    short = SEED_CHAT[0]["content"]
    n_short = len(tok(short, add_special_tokens=False)["input_ids"])
    n_long = len(tok(LONG_QUESTION, add_special_tokens=False)["input_ids"])
    chat = [{"role": "user", "content": LONG_QUESTION}, {"role": "assistant", "content": "好的。"}]
    ex = eval_examples(chat, tok, combine=True, max_input_length=512, max_output_length=512)[0]
    kept = tok.decode(ex["prompt_ids"], skip_special_tokens=True)
    whole = LONG_QUESTION in kept
    verdict = "wrong" if len(LONG_QUESTION) > 512 and whole else "holds"
    return _result("lengths_count_characters", verdict, (
        f"the example question has {len(short)} characters (not 11) and {n_short} tokens; a {len(LONG_QUESTION)}-character "
        f"question is {n_long} tokens, and with max_input_length 512 its eval prompt ({len(ex['prompt_ids'])} tokens) keeps "
        f"all {len(LONG_QUESTION)} characters: {whole}. The limit counts tokens of the model's tokenizer."))


def check_input_cut_to_first_512() -> ClaimCheck:
    """Build a training sample whose prompt is longer than max_input_length."""
    from .data import IGNORE_INDEX, build_train_dataset

    tok = _tokenizer()
    question = LONG_QUESTION * 2  # well over 512 tokens, under 1025
    reply = "这座城市历史悠久。"
    rows = [{"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]}]
    ds, report = build_train_dataset(rows, tok, combine=True, max_input_length=512, max_output_length=512)
    labels = ds[0]["labels"]
    first_target = next(i for i, t in enumerate(labels) if t != IGNORE_INDEX)
    prompt_tokens = first_target  # tokens before the reply (the reply's first target follows them)
    reply_kept = reply in tok.decode([t for t in labels if t != IGNORE_INDEX])
    # the same prompt made longer than the whole budget: nothing of the reply survives
    rows2 = [{"messages": [{"role": "user", "content": LONG_QUESTION * 3}, {"role": "assistant", "content": reply}]}]
    _, report2 = build_train_dataset(rows2, tok, combine=True, max_input_length=512, max_output_length=512)
    verdict = "wrong" if prompt_tokens > 512 and reply_kept and report.truncated == 0 else "holds"
    return _result("input_cut_to_first_512", verdict, (
        f"with 512/512 a training sample keeps {prompt_tokens} prompt tokens (more than 512) and its whole reply "
        f"({reply_kept}); only the total is cut, to {report.max_length} = 512 + 512 + 1 tokens ({report.truncated} cut). "
        f"A prompt of {report2.lengths[0]} tokens is cut inside the prompt and keeps no reply token: "
        f"{len(report2.empty)} sample dropped. (Evaluation does cut the prompt to max_input_length.)"))


def check_max_steps_stops_training() -> ClaimCheck:
    """Plan lora.yaml on 1,000 samples with many epochs, and look at the short run's last step."""
    p = _lora_plan(1000, num_train_epochs=100)
    run = short_run()
    state = run.result.trainer.state
    epochs = run.config.training_args.get("num_train_epochs", 3.0)
    holds = p.max_steps == 3000 and state.global_step == run.config.training_args["max_steps"]
    return _result("max_steps_stops_training", "holds" if holds else "wrong", (
        f"lora.yaml on 1,000 samples with num_train_epochs 100: max_steps {p.max_steps} = {p.epochs:.2f} epochs, "
        f"last save {p.checkpoints[-1]}; the 20-step run (num_train_epochs default {epochs:g}) stopped at step "
        f"{state.global_step}, epoch {state.epoch:.2f}."))


def check_update_is_lr_times_gradient() -> ClaimCheck:
    """Build the optimizer the Trainer builds from lora.yaml and take one step on known gradients."""
    import torch
    from transformers import Trainer

    args = _lora_cfg().training_arguments()
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    g = torch.tensor([1e-3, 1.0, 100.0])
    w = torch.nn.Parameter(torch.zeros(3))
    opt = cls([w], **kwargs)
    w.grad = g.clone()
    opt.step()
    update = (-w.detach()).tolist()
    sgd = (args.learning_rate * g).tolist()
    same = all(abs(a - b) <= 1e-9 + 1e-3 * abs(b) for a, b in zip(update, sgd))
    return _result("update_is_lr_times_gradient", "holds" if same else "wrong", (
        f"the Trainer builds {cls.__module__}.{cls.__name__} (betas {kwargs.get('betas')}, weight_decay {args.weight_decay}); "
        f"its first step on gradients [0.001, 1, 100] moves the weights by [{', '.join(map(_fmt, update))}], "
        f"while lr * g would be [{', '.join(map(_fmt, sgd))}]: Adam divides by the gradient's running size."))


def check_two_devices_two_samples() -> ClaimCheck:
    """Plan lora.yaml on 2 devices; shard a sampler the way accelerate shards it for 2 processes."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    p = _lora_plan(600, num_devices=2)
    shards = [list(BatchSamplerShard(BatchSampler(SequentialSampler(range(600)), p.per_device_train_batch_size, False),
                                     num_processes=2, process_index=i)) for i in range(2)]
    first_step = [s[0] for s in shards]
    distinct = len({i for b in first_step for i in b})
    holds = p.global_batch_size == 2 and distinct == 2
    return _result("two_devices_two_samples", "holds" if holds else "wrong", (
        f"plan: global batch {p.global_batch_size} (1 per device x 2 devices x {p.gradient_accumulation_steps} accumulation), "
        f"{p.steps_per_epoch} steps per epoch; accelerate's sharding gives the two processes different samples at "
        f"step 1 ({first_step[0]} and {first_step[1]}), {len(shards[0])} batches each. "
        f"(With gradient_accumulation_steps > 1 a step would take more.)"))


class _WhoLoads:
    """A data set whose items say which process and thread loaded them (module level: workers import it)."""

    def __init__(self, n: int = 8):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import torch

        info = torch.utils.data.get_worker_info()
        return {"pid": os.getpid(), "thread": threading.get_ident(), "worker": -1 if info is None else info.id,
                "num_workers": 0 if info is None else info.num_workers}


def _keep_list(batch):
    return {"items": batch}


def check_workers_are_threads() -> ClaimCheck:
    """Load a data set through the Trainer's own train DataLoader with dataloader_num_workers=2."""
    from dataclasses import replace

    from transformers import Trainer

    run = short_run()
    args2 = replace(run.result.trainer.args, dataloader_num_workers=2, per_device_train_batch_size=1, output_dir=str(run.output_dir / "workers"),
                    save_strategy="no", eval_strategy="no", log_level="warning")
    trainer = Trainer(model=run.result.trainer.model, args=args2, train_dataset=_WhoLoads(8), data_collator=_keep_list)
    dl = trainer.get_train_dataloader()
    items = [it for batch in dl for it in batch["items"]]
    main_pid = os.getpid()
    pids = {it["pid"] for it in items}
    workers = {it["worker"] for it in items}
    in_main = main_pid in pids
    verdict = "wrong" if not in_main and len(pids) == 2 else "holds"
    return _result("workers_are_threads", verdict, (
        f"the Trainer's DataLoader got num_workers={dl.num_workers}; the {len(items)} samples were loaded by workers "
        f"{sorted(workers)} in {len(pids)} processes, none of them the main process ({not in_main}): PyTorch's "
        f"workers are separate processes (get_worker_info().num_workers = {items[0]['num_workers']}), not threads."))


def check_unused_columns_kept() -> ClaimCheck:
    """Give the Trainer a data set with an extra_info column and see what the train DataLoader delivers."""
    from dataclasses import replace

    from datasets import Dataset
    from transformers import Trainer

    run = short_run()
    ds = Dataset.from_dict({"input_ids": [[1, 2, 3]] * 4, "labels": [[1, 2, 3]] * 4, "extra_info": ["note"] * 4})
    seen = {}
    for flag in (False, True):
        args = replace(run.result.trainer.args, remove_unused_columns=flag, per_device_train_batch_size=2,
                       output_dir=str(run.output_dir / "columns"), save_strategy="no", eval_strategy="no", log_level="warning")
        trainer = Trainer(model=run.result.trainer.model, args=args, train_dataset=ds,
                          data_collator=lambda feats: {"keys": sorted(feats[0])})
        seen[flag] = next(iter(trainer.get_train_dataloader()))["keys"]
    configured = _lora_cfg().training_args["remove_unused_columns"]
    holds = "extra_info" in seen[False] and "extra_info" not in seen[True]
    return _result("unused_columns_kept", "holds" if holds else "wrong", (
        f"lora.yaml sets remove_unused_columns: {str(configured).lower()}; with false the collator receives {seen[False]}, with true {seen[True]} "
        f"(columns the model's forward does not take are dropped). GLM-4's script needs false because its "
        f"samples are built before the Trainer sees them."))


def check_checkpoints_every_500() -> ClaimCheck:
    """Plan lora.yaml's saves; check that plans match a real run's checkpoints."""
    from .plan import make_plan
    from .train import list_checkpoints

    p = _lora_plan(600)
    run = short_run()
    short_plan = make_plan(run.config.training_arguments(), len(run.result.trainer.train_dataset))
    on_disk = [c.name for c in list_checkpoints(run.output_dir)]
    holds = p.save_steps == list(range(500, 3001, 500)) and on_disk == short_plan.checkpoints
    return _result("checkpoints_every_500", "holds" if holds else "wrong", (
        f"lora.yaml's plan saves {', '.join(p.checkpoints)}; the plan method is checked on the 20-step run "
        f"(save_steps 10): planned {short_plan.checkpoints}, on disk {on_disk}."))


def check_output_dir_holds_model() -> ClaimCheck:
    """List a LoRA checkpoint of the short run: adapter and resume state, or a whole model?"""
    from safetensors import safe_open

    from .train import list_checkpoints

    run = short_run()
    ck = list_checkpoints(run.output_dir)[0]
    names = sorted(p.name for p in ck.iterdir())
    with safe_open(str(ck / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    only_lora = all("lora_" in k for k in keys)
    full_model = any(n.startswith(("model.safetensors", "pytorch_model")) for n in names)
    adapter_dir = run.result.adapter_dir
    verdict = "partly" if only_lora and not full_model else "holds"
    return _result("output_dir_holds_model", verdict, (
        f"output_dir gets checkpoints, but with LoRA a checkpoint holds no model: {ck.name} has {', '.join(names)}; "
        f"its {len(keys)} stored tensors are all LoRA matrices ({only_lora}). The base model stays where it was "
        f"loaded from; gluekit adds the final adapter in {adapter_dir.name}/."))


def check_lr_constant_between_checkpoints() -> ClaimCheck:
    """Read the LR of every step from the scheduler the Trainer builds; compare with the short run's log."""
    from .plan import make_plan

    p = _lora_plan(600)
    steps = (1, 500, 501, 1000, 3000)
    lrs = {s: p.lr_at(s) for s in steps}
    run = short_run()
    logged = [(e["step"], e["learning_rate"]) for e in run.log_history if "learning_rate" in e]
    sp = make_plan(run.config.training_arguments(), len(run.result.trainer.train_dataset))
    match = all(abs(lr - sp.lr_at(s)) <= 1e-12 + 1e-6 * lr for s, lr in logged)
    constant = lrs[1] == lrs[1000]
    return _result("lr_constant_between_checkpoints", "holds" if constant else "wrong", (
        f"scheduler {p.scheduler!r}, warm-up {p.warmup_steps}: LR at step " +
        ", ".join(f"{s} {_fmt(v)}" for s, v in lrs.items()) +
        f" (linear decay to 0 over max_steps); the 20-step run logged LRs equal to its plan's: {match}."))


def check_log_level_info_logs_progress() -> ClaimCheck:
    """At log_level info, which messages are log records and which are printed by a callback?"""
    run = short_run()
    info = [m for lvl, m in run.log_messages if lvl == "INFO"]
    saves = [m for m in info if m.startswith("Saving model checkpoint")]
    loss_in_logs = [m for m in info if "'loss'" in m or "loss=" in m]
    printed_loss = [line for line in run.printed if "'loss'" in line]
    holds_part = bool(saves) and bool(info)
    verdict = "partly" if holds_part and not loss_in_logs and printed_loss else ("holds" if holds_part else "wrong")
    return _result("log_level_info_logs_progress", verdict, (
        f"at log_level info transformers emitted {len(info)} info messages in 20 steps, {len(saves)} of them "
        f"'Saving model checkpoint ...', {len(loss_in_logs)} with a loss; the {len(printed_loss)} loss records came "
        f"from the Trainer's printer callback, which prints whatever log_level says."))


def check_logs_every_10_steps() -> ClaimCheck:
    p = _lora_plan(600)
    run = short_run()
    logged = [e["step"] for e in run.log_history if "loss" in e]
    holds = p.log_steps == list(range(10, 3001, 10)) and logged == [10, 20]
    return _result("logs_every_10_steps", "holds" if holds else "wrong", (
        f"lora.yaml's plan logs at {p.log_steps[0]}, {p.log_steps[1]}, ..., {p.log_steps[-1]} ({len(p.log_steps)} records); "
        f"the 20-step run with logging_steps 10 logged the loss at steps {logged}."))


SEED_LOG_LINE = re.compile(r"^\[INFO\] Step \d+: loss=")


def check_log_line_format() -> ClaimCheck:
    run = short_run()
    seed_like = [line for line in run.printed if SEED_LOG_LINE.match(line)]
    dict_lines = [line for line in run.printed if line.startswith("{'loss'")]
    record = next(e for e in run.log_history if "loss" in e)
    verdict = "wrong" if not seed_like and dict_lines else "holds"
    return _result("log_line_format", verdict, (
        f"lines like '[INFO] Step 10: loss=...': {len(seed_like)}; the Trainer printed {len(dict_lines)} loss records "
        f"as Python dicts with keys {list(record)[:-1]} (stored in trainer_state.json's log_history with 'step')."))


def check_eval_every_500() -> ClaimCheck:
    from .plan import make_plan

    p = _lora_plan(600)
    run = short_run()
    evals = [e["step"] for e in run.log_history if "eval_samples" in e]
    sp = make_plan(run.config.training_arguments(), len(run.result.trainer.train_dataset))
    holds = p.eval_steps == list(range(500, 3001, 500)) and evals == sp.eval_steps
    return _result("eval_every_500", "holds" if holds else "wrong", (
        f"lora.yaml's plan evaluates at {p.eval_steps}; the 20-step run (eval_steps 20) evaluated at {evals}, "
        f"as its plan said ({sp.eval_steps})."))


def check_eval_sees_8_samples() -> ClaimCheck:
    """Count the samples of a real evaluation, and shard the dev set over 2 processes as accelerate does."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    run = short_run()
    record = next(e for e in run.log_history if "eval_samples" in e)
    n = len(run.result.trainer.eval_rows)
    batch = run.result.trainer.args.per_device_eval_batch_size
    shards = [list(BatchSamplerShard(BatchSampler(SequentialSampler(range(n)), batch, False), num_processes=2, process_index=i))
              for i in range(2)]
    covered = {i for s in shards for b in s for i in b}
    verdict = "wrong" if record["eval_samples"] == n and len(covered) == n and n > 2 * batch else "holds"
    return _result("eval_sees_8_samples", verdict, (
        f"one evaluation with per_device_eval_batch_size {batch} scored eval_samples = {record['eval_samples']}, the whole dev "
        f"set ({n} replies); on 2 processes accelerate gives each {len(shards[0])} batches of {batch} and together they "
        f"cover all {len(covered)} samples. The batch size sets how many go through at once, not how many are evaluated."))


def check_eval_reports_loss() -> ClaimCheck:
    run = short_run()
    record = next(e for e in run.log_history if "eval_samples" in e)
    keys = [k for k in record if k.startswith("eval_")]
    row_keys = sorted(run.result.trainer.eval_rows[0])
    verdict = "wrong" if "eval_loss" not in record and "labels" not in row_keys else "holds"
    return _result("eval_reports_loss", verdict, (
        f"the evaluation record holds {keys}, no eval_loss: eval samples carry {row_keys}, no labels, so there is "
        f"nothing to compute a loss against (as in GLM-4's script); the scores compare generated replies with references."))


def check_predict_generates_text() -> ClaimCheck:
    import json

    run = short_run()
    step = run.config.training_args["eval_steps"]
    path = run.output_dir / "eval_predictions" / f"eval-step-{step}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    texts = all(isinstance(r["prediction"], str) for r in rows)
    holds = run.config.training_args["predict_with_generate"] is True and texts and len(rows) == len(run.result.trainer.eval_rows)
    return _result("predict_generates_text", "holds" if holds else "wrong", (
        f"the evaluation at step {step} wrote {len(rows)} generated replies (with prompt and reference) to "
        f"{path.relative_to(run.output_dir)}; its metrics compare those texts."))


def check_max_new_tokens_caps_replies() -> ClaimCheck:
    """Generate with the run's generation config and count the new tokens."""
    import torch

    run = short_run()
    model, tok = run.result.trainer.model, _tokenizer()
    gen = run.config.generation_config(model.generation_config)
    gen.do_sample = False
    gen.eos_token_id = None  # never stop early: see the cap itself
    gen.temperature = gen.top_p = gen.top_k = None
    gen.pad_token_id = tok.pad_token_id
    prompt = run.result.trainer.eval_rows[0]["prompt_ids"]
    model.eval()
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             generation_config=gen)
    new = out.shape[1] - len(prompt)
    cap = gen.max_new_tokens
    lora_cap = _lora_cfg().training_args["generation_config"]["max_new_tokens"]
    return _result("max_new_tokens_caps_replies", "holds" if new == cap else "wrong", (
        f"with max_new_tokens {cap} and no stop token, generation added exactly {new} tokens to a {len(prompt)}-token "
        f"prompt; lora.yaml's {lora_cap} is a cap in tokens (replies usually stop earlier at a stop token)."))


def check_lora_alpha_is_scaling() -> ClaimCheck:
    """Read PEFT's scaling on the run's LoRA layers and compare with alpha and r."""
    from .lora import lora_scaling

    run = short_run()
    pc = run.config.peft_config
    scalings = {m.scaling["default"] for m in run.result.trainer.model.modules() if hasattr(m, "scaling") and isinstance(m.scaling, dict) and "default" in m.scaling}
    seed = _lora_cfg().peft_config
    ours = lora_scaling(pc["r"], pc["lora_alpha"])
    is_alpha = scalings == {float(pc["lora_alpha"])}
    verdict = "partly" if not is_alpha and scalings == {ours} else ("holds" if is_alpha else "wrong")
    return _result("lora_alpha_is_scaling", verdict, (
        f"PEFT multiplies B@A by {sorted(scalings)} in the tiny run (lora_alpha {pc['lora_alpha']}, r {pc['r']}): "
        f"alpha / r, not alpha. lora.yaml's alpha {seed['lora_alpha']} with r {seed['r']} gives "
        f"{lora_scaling(seed['r'], seed['lora_alpha']):g}; alpha sets the factor only together with r."))


CHECKS: dict[str, Callable[[], ClaimCheck]] = {
    "combine_concatenates": check_combine_concatenates,
    "lengths_count_characters": check_lengths_count_characters,
    "input_cut_to_first_512": check_input_cut_to_first_512,
    "max_steps_stops_training": check_max_steps_stops_training,
    "update_is_lr_times_gradient": check_update_is_lr_times_gradient,
    "two_devices_two_samples": check_two_devices_two_samples,
    "workers_are_threads": check_workers_are_threads,
    "unused_columns_kept": check_unused_columns_kept,
    "checkpoints_every_500": check_checkpoints_every_500,
    "output_dir_holds_model": check_output_dir_holds_model,
    "lr_constant_between_checkpoints": check_lr_constant_between_checkpoints,
    "log_level_info_logs_progress": check_log_level_info_logs_progress,
    "logs_every_10_steps": check_logs_every_10_steps,
    "log_line_format": check_log_line_format,
    "eval_every_500": check_eval_every_500,
    "eval_sees_8_samples": check_eval_sees_8_samples,
    "eval_reports_loss": check_eval_reports_loss,
    "predict_generates_text": check_predict_generates_text,
    "max_new_tokens_caps_replies": check_max_new_tokens_caps_replies,
    "lora_alpha_is_scaling": check_lora_alpha_is_scaling,
}


def check(claim_id: str) -> ClaimCheck:
    """Run one claim's check."""
    return CHECKS[claim_id]()


def all_claims() -> list[ClaimCheck]:
    """Every claim's computed verdict, in the explanation's order."""
    return [CHECKS[c.id]() for c in CLAIMS]


def table(results: list[ClaimCheck]) -> str:
    """A plain-text table: verdict, field, claim (English)."""
    w = max(len(r.field) for r in results)
    lines = [f"{'verdict':8s} {'field':{w}s} claim", f"{'-' * 8} {'-' * w} {'-' * 5}"]
    lines += [f"{r.verdict:8s} {r.field:{w}s} {r.claim_en}" for r in results]
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    lines.append(f"\n{len(results)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return "\n".join(lines)


# ---------------------------------------------------------------- the reference script's two bugs

def reference_eval_prompt(messages: list[dict], tokenizer, max_input_length: int) -> list[int]:
    """The eval prompt GLM-4's script builds with ``combine: True`` (a model of it, from the facts).

    It renders the WHOLE conversation, reply included, cuts it to ``max_input_length`` and appends
    the sequence's first token (``[gMASK]``) where ``<|assistant|>`` belongs.
    """
    from .data import _render, clean_message

    ids = _render(tokenizer, [clean_message(m) for m in messages])
    return ids[:max_input_length] + ids[:1]


def reference_resume_action(word: str | None, output_dir: str | Path) -> str:
    """What GLM-4's ``finetune.py`` does with its 4th argument (a model of it, from the facts)."""
    from .train import CHECKPOINT_RE

    if word is None or str(word).strip() == "":
        return "train fresh"
    out = Path(output_dir)
    if not out.is_dir():
        return "crash: FileNotFoundError (no output_dir)"
    steps = sorted(int(m.group(1)) for p in out.iterdir() if (m := CHECKPOINT_RE.match(p.name)))
    if str(word).upper() == "YES":
        return f"resume from checkpoint-{steps[-1]}" if steps else "train fresh"
    if str(word).isdigit() and int(word) > 0:
        return f"resume from checkpoint-{int(word)}"
    return "skip training (prints a message, trains nothing)"


def gluekit_resume_action(word: str | None, output_dir: str | Path) -> str:
    """The same decision by :func:`gluekit.train.resolve_resume` (never deletes: overwrite stays False)."""
    from .errors import GluekitError
    from .train import resolve_resume

    try:
        ck = resolve_resume(output_dir, word)
    except GluekitError as e:
        return "refuse: " + e.problems[0].split(". ")[0].split(": ", 1)[-1]
    return f"resume from {ck.name}" if ck is not None else "train fresh"


__all__ = ["Claim", "ClaimCheck", "CLAIMS", "CHECKS", "VERDICTS", "check", "all_claims", "table", "short_run",
           "reference_eval_prompt", "reference_resume_action", "gluekit_resume_action"]
