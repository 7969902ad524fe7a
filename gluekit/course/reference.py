"""Decisions of GLM-4's reference ``finetune.py``, restated, so notebooks can run them next to gluekit's.

Restated from the reference script (THUDM/GLM-4, ``finetune_demo/finetune.py``, its last version
before the folder moved) and the documented facts; written here in gluekit's own words:

* the eval samples (``process_batch_eval``): with ``combine: True`` the prompt is the WHOLE
  conversation, answer included, cut to ``max_input_length``, with ``[gMASK]`` where
  ``<|assistant|>`` belongs; with ``combine: False`` one sample per assistant turn, but the loop
  STOPS at the first message met once the history reaches ``max_input_length`` tokens, so a long
  conversation gives fewer samples and no prompt is ever cut;
* its evaluation (``ReferenceTrainer``: its ``prediction_step``; ``ReferenceCollator``;
  ``compute_metrics``), run through transformers' own ``Seq2SeqTrainer.evaluate`` by
  :func:`reference_evaluate`;
* the resume word (``reference_resume_action``) and what the Trainer then does with it
  (:func:`reference_resume_outcome`).
"""
from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer

# ---------------------------------------------------------------- eval samples


def reference_eval_samples(messages: list[dict], tokenizer, combine: bool, max_input_length: int,
                           max_output_length: int) -> list[dict]:
    """The eval samples GLM-4's script builds from one conversation: ``{"input_ids", "output_ids"}``.

    ``combine: True``: one sample, prompt = the whole rendered conversation cut to
    ``max_input_length`` + its first token (``[gMASK]``); output = from the last ``<|assistant|>`` on,
    plus ``<|user|>``. ``combine: False``: messages are rendered one by one after ``[gMASK]<sop>``;
    each assistant message gives a sample (prompt = the history + ``<|assistant|>``, output = its
    reply + ``<|user|>``) unless the history has reached ``max_input_length`` tokens before it:
    then the loop breaks and the rest of the conversation gives nothing.
    """
    from ..data import clean_message
    from ..tokens import SpecialIds, render_ids, template_prefix

    sp = SpecialIds.of(tokenizer)
    messages = [clean_message(m) for m in messages]
    out = []
    if combine:
        ids = render_ids(tokenizer, messages)
        last = len(ids) - ids[::-1].index(sp.assistant) - 1
        output = ids[last:] + [sp.user]
        out.append({"input_ids": ids[:max_input_length] + ids[:1], "output_ids": output[:max_output_length]})
        return out
    n = len(template_prefix(tokenizer))
    ids = [sp.gmask, sp.sop]
    for m in messages:
        if len(ids) >= max_input_length:
            break  # the reference stops here: no later turn of this conversation is evaluated
        new = render_ids(tokenizer, [m])[n:]
        if m["role"] == "assistant":
            out.append({"input_ids": ids[:max_input_length] + new[:1], "output_ids": (new[1:] + [sp.user])[:max_output_length]})
        ids = ids + new
    return out


def reference_eval_prompt(messages: list[dict], tokenizer, max_input_length: int) -> list[int]:
    """The eval prompt GLM-4's script builds with ``combine: True``: the whole conversation, reply
    included, cut to ``max_input_length``, with the sequence's first token (``[gMASK]``) where
    ``<|assistant|>`` belongs."""
    return reference_eval_samples(messages, tokenizer, True, max_input_length, 1)[0]["input_ids"]


# ---------------------------------------------------------------- its evaluation


class ReferenceCollator(DataCollatorForSeq2Seq):
    """The reference's collator: ``output_ids`` padded to the longest with the pad id, then transformers' own."""

    def __call__(self, features, return_tensors=None):
        if "output_ids" in features[0]:
            width = max(len(f["output_ids"]) for f in features)
            features = [{**f, "output_ids": list(f["output_ids"]) + [self.tokenizer.pad_token_id] * (width - len(f["output_ids"]))}
                        for f in features]
        return super().__call__(features, return_tensors)


class ReferenceTrainer(Seq2SeqTrainer):
    """The reference's ``prediction_step``: ``output_ids`` are popped only when generating, the prompt is
    cut off the generated tokens, and ``output_ids`` are returned as the labels.

    ``issue_699_fix``: transformers' ``DataCollatorForSeq2Seq`` puts ``labels: None`` in a batch
    without labels, so ``Seq2SeqTrainer`` asks the model for a loss it cannot give (``KeyError:
    'loss'``, GLM-4 issue 699); its maintainers' fix, deleting that key, is applied when true.
    """

    issue_699_fix = True

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        import torch

        with torch.no_grad():
            if self.args.predict_with_generate:
                output_ids = inputs.pop("output_ids")
            input_ids = inputs["input_ids"]
            if self.issue_699_fix and "labels" in inputs:
                del inputs["labels"]
            loss, generated_tokens, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs)
            generated_tokens = generated_tokens[:, input_ids.size()[1]:]
            labels = output_ids  # noqa: F821 (unbound without predict_with_generate, as in the reference)
        return loss, generated_tokens, labels


@dataclass
class ReferenceEval:
    """What running the reference's evaluation through ``Seq2SeqTrainer.evaluate`` did."""

    num_samples: int
    """Eval samples built from the conversations."""
    metrics: dict | None = None
    """What ``evaluate`` returned (None when it failed)."""
    error: str | None = None
    """``ExceptionType: message`` when it failed."""
    generate_calls: int = 0
    """Calls of the model's ``generate``."""
    scored: int | None = None
    """Predictions ``compute_metrics`` received."""
    collator_keys: list[str] = field(default_factory=list)
    """The columns the collator received (first batch)."""
    batches: int = 0
    """Batches the Trainer's eval DataLoader made."""


def reference_evaluate(model, tokenizer, conversations: list[list[dict]], *, combine: bool, max_input_length: int,
                       max_output_length: int, predict_with_generate: bool, per_device_eval_batch_size: int,
                       max_new_tokens: int, output_dir: str | Path, remove_unused_columns: bool = False,
                       issue_699_fix: bool = True) -> ReferenceEval:
    """Evaluate ``model`` (a copy of it) as GLM-4's script does, with transformers' own ``Seq2SeqTrainer.evaluate``.

    The eval set is :func:`reference_eval_samples` of every conversation; the Trainer is the
    reference's (:class:`ReferenceTrainer`, :class:`ReferenceCollator`, its ``compute_metrics``
    with gluekit's jieba ROUGE/BLEU), its generation config the reference's stop tokens;
    ``issue_699_fix``: see :class:`ReferenceTrainer`. A failure is recorded, not raised: some
    settings make the reference fail, and that is the finding.
    """
    from datasets import Dataset
    from transformers import GenerationConfig, Seq2SeqTrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from ..metrics import compute_metrics
    from ..quiet import transformers_logs
    from ..tokens import SpecialIds

    samples = [s for conv in conversations for s in reference_eval_samples(conv, tokenizer, combine, max_input_length, max_output_length)]
    found = ReferenceEval(num_samples=len(samples))
    net = copy.deepcopy(model)  # the caller's model keeps its generation config
    inner_generate = net.generate

    def generate(*args, **kwargs):
        found.generate_calls += 1
        return inner_generate(*args, **kwargs)

    net.generate = generate
    sp = SpecialIds.of(tokenizer)
    gen = GenerationConfig(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=sp.stop)
    args = Seq2SeqTrainingArguments(output_dir=str(output_dir), per_device_eval_batch_size=per_device_eval_batch_size,
                                    predict_with_generate=predict_with_generate, remove_unused_columns=remove_unused_columns,
                                    generation_config=gen, report_to="none", disable_tqdm=True, log_level="error",
                                    dataloader_pin_memory=False)

    def metrics(eval_preds):
        preds, labels = eval_preds
        found.scored = len(preds)
        decode = [tokenizer.decode([t for t in row if t >= 0], skip_special_tokens=True).strip() for row in preds]
        refs = [tokenizer.decode([t for t in row if t >= 0], skip_special_tokens=True).strip() for row in labels]
        m = compute_metrics(decode, refs)
        return {k: m[k] for k in ("rouge-1", "rouge-2", "rouge-l", "bleu-4")}

    collate = ReferenceCollator(tokenizer=tokenizer, padding="longest", return_tensors="pt")

    def collator(features):
        if not found.collator_keys:
            found.collator_keys = sorted(features[0])
        found.batches += 1
        return collate(features)

    with transformers_logs(logging.ERROR):  # its warnings (e.g. a generation flag) are not the finding
        trainer = ReferenceTrainer(model=net, args=args, data_collator=collator, processing_class=tokenizer,
                                   eval_dataset=Dataset.from_list(samples), compute_metrics=metrics)
        trainer.remove_callback(PrinterCallback)
        trainer.issue_699_fix = issue_699_fix
        try:
            found.metrics = trainer.evaluate()
        except Exception as e:  # the reference's own failure is the result
            found.error = f"{type(e).__name__}: {_first_line(e)}"
    return found


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else ""


# ---------------------------------------------------------------- resuming


def reference_resume_action(word: str | None, output_dir: str | Path) -> str:
    """What GLM-4's ``finetune.py`` decides with its 4th argument (a model of it, from the facts)."""
    from ..checkpoints import CHECKPOINT_RE

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


def reference_resume_outcome(word: str | None, output_dir: str | Path, trainer) -> str:
    """The reference's decision, followed into the Trainer: where it resumes, ``trainer`` (any
    Trainer with a model of the same kind) runs transformers' own first step of
    ``train(resume_from_checkpoint=...)``, loading the checkpoint (into a copy of the model), and
    the outcome says whether it loads or fails."""
    action = reference_resume_action(word, output_dir)
    m = re.fullmatch(r"resume from (checkpoint-\d+)", action)
    if m is None:
        return action
    path = Path(output_dir) / m.group(1)
    try:
        trainer._load_from_checkpoint(str(path), model=copy.deepcopy(trainer.model))  # Trainer.train's first resume step
    except (ValueError, OSError) as e:
        return f"{action}, then the Trainer fails: {type(e).__name__}: {_first_line(e)}"
    return f"{action}: the Trainer loads it"


def gluekit_resume_action(word: str | None, output_dir: str | Path) -> str:
    """The same decision by :func:`gluekit.checkpoints.resolve_resume` (never deletes: overwrite stays False)."""
    from ..errors import GluekitError
    from ..checkpoints import resolve_resume

    try:
        ck = resolve_resume(output_dir, word)
    except GluekitError as e:
        return "refuse: " + e.problems[0].split(". ")[0].split(": ", 1)[-1]
    return f"resume from {ck.name}" if ck is not None else "train fresh"
