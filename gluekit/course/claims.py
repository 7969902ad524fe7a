"""A popular Chinese explanation of ``lora.yaml``, claim by claim: what it says, as data.

Each claim is a paraphrase of a statement that explanation makes, with the ``lora.yaml`` field it
is about. :mod:`gluekit.course.checks` COMPUTES a verdict on each with gluekit and transformers;
nothing here or there hard-codes one. Verdicts: ``holds`` (the code does what the claim says),
``wrong`` (it does not), ``partly`` (true as far as it goes, but it leaves out something that
matters).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import shipped_config

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


def result(claim_id: str, verdict: str, evidence: str) -> ClaimCheck:
    """The :class:`ClaimCheck` of claim ``claim_id`` with a computed verdict and its evidence."""
    c = CLAIMS_BY_ID[claim_id]
    return ClaimCheck(c.id, c.claim_zh, c.claim_en, verdict, evidence, c.field)


def table(results: list[ClaimCheck]) -> str:
    """A plain-text table: verdict, field, claim (English)."""
    w = max(len(r.field) for r in results)
    lines = [f"{'verdict':8s} {'field':{w}s} claim", f"{'-' * 8} {'-' * w} {'-' * 5}"]
    lines += [f"{r.verdict:8s} {r.field:{w}s} {r.claim_en}" for r in results]
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    lines.append(f"\n{len(results)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return "\n".join(lines)



def verdict_html(results: list[ClaimCheck]) -> str:
    """A compact HTML verdict table (one row per verdict: how many claims, their fields), with every
    claim, its Chinese and English wording and its evidence behind a ``<details>`` toggle."""
    from html import escape

    rows = []
    for v in VERDICTS:
        mine = [r for r in results if r.verdict == v]
        fields = ", ".join(dict.fromkeys(f"<code>{escape(r.field)}</code>" for r in mine))
        rows.append(f"<tr><td><b>{v}</b></td><td>{len(mine)}</td><td style='text-align:left'>{fields}</td></tr>")
    detail = "".join(
        f"<tr><td>{r.verdict}</td><td style='text-align:left'><code>{escape(r.field)}</code></td>"
        f"<td style='text-align:left'>{escape(r.claim_zh)}<br>{escape(r.claim_en)}</td>"
        f"<td style='text-align:left'>{escape(r.evidence)}</td></tr>" for r in results)
    return (f"<table><tr><th>verdict</th><th>claims</th><th>fields</th></tr>{''.join(rows)}</table>"
            f"<details><summary>all {len(results)} claims with their evidence</summary>"
            f"<table><tr><th>verdict</th><th>field</th><th>claim</th><th>evidence</th></tr>{detail}</table></details>")
