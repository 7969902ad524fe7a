"""Each claim of :mod:`gluekit.course.claims`, checked: its verdict COMPUTED with gluekit and transformers.

A check uses a tokenizer, a plan, PyTorch's DataLoader, accelerate's sharding, an optimizer step or
the short run of :mod:`gluekit.course.runs` (a 20-step training of the tiny GLM), and says what it
found. Change the library and a verdict may change with it. Checks are cheap (a few seconds each,
after the shared run).
"""
from __future__ import annotations

import os
import re
import threading
from typing import Callable

from .claims import CLAIMS, SEED_CHAT, ClaimCheck, result
from .runs import lora_config, lora_plan, reference_eval_run, short_run, tokenizer


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def check_combine_concatenates() -> ClaimCheck:
    """Encode the seed's own chat both ways and compare sequences and targets."""
    from ..data import encode_conversation
    from ..tokens import IGNORE_INDEX

    tok = tokenizer()
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
    return result("combine_concatenates", verdict, (
        f"both settings give one sequence holding every message ({len(ids)} tokens, identical input_ids: {same_ids}), "
        f"starting {''.join(start)} with role tokens, no [CLS]/[SEP]/[EOS] in the vocabulary ({bert_tokens or 'none found'}); "
        f"what changes is the loss: combine=True trains {trained[True]} of {n_replies} replies, "
        f"combine=False trains {trained[False]} of {n_replies}."))


LONG_QUESTION = "请介绍一下这座城市的历史和文化。" * 40  # 640 characters


def check_lengths_count_characters() -> ClaimCheck:
    """Count characters and tokens; cut an eval prompt with max_input_length 512."""
    from ..data import eval_examples

    tok = tokenizer()
    short = SEED_CHAT[0]["content"]
    n_short = len(tok(short, add_special_tokens=False)["input_ids"])
    n_long = len(tok(LONG_QUESTION, add_special_tokens=False)["input_ids"])
    chat = [{"role": "user", "content": LONG_QUESTION}, {"role": "assistant", "content": "好的。"}]
    ex = eval_examples(chat, tok, combine=True, max_input_length=512, max_output_length=512)[0]
    kept = tok.decode(ex["prompt_ids"], skip_special_tokens=True)
    whole = LONG_QUESTION in kept
    verdict = "wrong" if len(LONG_QUESTION) > 512 and whole else "holds"
    return result("lengths_count_characters", verdict, (
        f"the example question has {len(short)} characters (not 11) and {n_short} tokens; a {len(LONG_QUESTION)}-character "
        f"question is {n_long} tokens, and with max_input_length 512 its eval prompt ({len(ex['prompt_ids'])} tokens) keeps "
        f"all {len(LONG_QUESTION)} characters: {whole}. The limit counts tokens of the model's tokenizer."))


def check_input_cut_to_first_512() -> ClaimCheck:
    """Build a training sample whose prompt is longer than max_input_length."""
    from ..data import build_train_dataset
    from ..tokens import IGNORE_INDEX

    tok = tokenizer()
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
    return result("input_cut_to_first_512", verdict, (
        f"with 512/512 a training sample keeps {prompt_tokens} prompt tokens (more than 512) and its whole reply "
        f"({reply_kept}); only the total is cut, to {report.max_length} = 512 + 512 + 1 tokens ({report.truncated} cut). "
        f"A prompt of {report2.lengths[0]} tokens is cut inside the prompt and keeps no reply token: "
        f"{len(report2.empty)} sample dropped. (Evaluation does cut the prompt to max_input_length.)"))


def check_max_steps_stops_training() -> ClaimCheck:
    """Plan lora.yaml on 1,000 samples with many epochs, and look at the short run's last step."""
    p = lora_plan(1000, num_train_epochs=100)
    run = short_run()
    state = run.result.trainer.state
    epochs = run.result.trainer.args.num_train_epochs  # as the Trainer ran it (tiny.yaml keeps its default)
    holds = p.max_steps == 3000 and state.global_step == run.config.training_args["max_steps"]
    return result("max_steps_stops_training", "holds" if holds else "wrong", (
        f"lora.yaml on 1,000 samples with num_train_epochs 100: max_steps {p.max_steps} = {p.epochs:.2f} epochs, "
        f"last save {p.checkpoints[-1]}; the 20-step run (num_train_epochs default {epochs:g}) stopped at step "
        f"{state.global_step}, epoch {state.epoch:.2f}."))


def check_update_is_lr_times_gradient() -> ClaimCheck:
    """Build the optimizer the Trainer builds from lora.yaml and take one step on known gradients."""
    import torch
    from transformers import Trainer

    args = lora_config().training_arguments()
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    g = torch.tensor([1e-3, 1.0, 100.0])
    w = torch.nn.Parameter(torch.zeros(3))
    opt = cls([w], **kwargs)
    w.grad = g.clone()
    opt.step()
    update = (-w.detach()).tolist()
    sgd = (args.learning_rate * g).tolist()
    same = all(abs(a - b) <= 1e-9 + 1e-3 * abs(b) for a, b in zip(update, sgd))
    return result("update_is_lr_times_gradient", "holds" if same else "wrong", (
        f"the Trainer builds {cls.__module__}.{cls.__name__} (betas {kwargs.get('betas')}, weight_decay {args.weight_decay}); "
        f"its first step on gradients [0.001, 1, 100] moves the weights by [{', '.join(map(_fmt, update))}], "
        f"while lr * g would be [{', '.join(map(_fmt, sgd))}]: Adam divides by the gradient's running size."))


def check_two_devices_two_samples() -> ClaimCheck:
    """Plan lora.yaml on 2 devices; shard a sampler the way accelerate shards it for 2 processes."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    p = lora_plan(600, num_devices=2)
    shards = [list(BatchSamplerShard(BatchSampler(SequentialSampler(range(600)), p.per_device_train_batch_size, False),
                                     num_processes=2, process_index=i)) for i in range(2)]
    first_step = [s[0] for s in shards]
    distinct = len({i for b in first_step for i in b})
    holds = p.global_batch_size == 2 and distinct == 2
    return result("two_devices_two_samples", "holds" if holds else "wrong", (
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
    return result("workers_are_threads", verdict, (
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
    configured = lora_config().training_args["remove_unused_columns"]
    holds = "extra_info" in seen[False] and "extra_info" not in seen[True]
    kept, dropped = reference_eval_run(True, False), reference_eval_run(True, True)
    return result("unused_columns_kept", "holds" if holds else "wrong", (
        f"lora.yaml sets remove_unused_columns: {str(configured).lower()}; with false the collator receives {seen[False]}, with true {seen[True]} "
        f"(columns the model's forward does not take are dropped). Why GLM-4's script needs false: its eval samples carry "
        f"an output_ids column (the reference reply) that the model's forward does not take but its collator and "
        f"prediction_step need; running the reference's evaluation, its collator receives {kept.collator_keys} with false "
        f"({'it evaluates' if kept.error is None else kept.error}) and {dropped.collator_keys} with true, and then "
        f"{dropped.error or 'it still evaluates'}."))


def check_checkpoints_every_500() -> ClaimCheck:
    """Plan lora.yaml's saves; check that plans match a real run's checkpoints."""
    from ..plan import make_plan
    from ..checkpoints import list_checkpoints

    p = lora_plan(600)
    run = short_run()
    short_plan = make_plan(run.config.training_arguments(), len(run.result.trainer.train_dataset))
    on_disk = [c.name for c in list_checkpoints(run.output_dir)]
    holds = p.save_steps == list(range(500, 3001, 500)) and on_disk == short_plan.checkpoints
    return result("checkpoints_every_500", "holds" if holds else "wrong", (
        f"lora.yaml's plan saves {', '.join(p.checkpoints)}; the plan method is checked on the 20-step run "
        f"(save_steps 10): planned {short_plan.checkpoints}, on disk {on_disk}."))


def check_output_dir_holds_model() -> ClaimCheck:
    """List a LoRA checkpoint of the short run: adapter and resume state, or a whole model?"""
    from safetensors import safe_open

    from ..checkpoints import list_checkpoints

    run = short_run()
    ck = list_checkpoints(run.output_dir)[0]
    names = sorted(p.name for p in ck.iterdir())
    with safe_open(str(ck / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    only_lora = all("lora_" in k for k in keys)
    full_model = any(n.startswith(("model.safetensors", "pytorch_model")) for n in names)
    adapter_dir = run.result.adapter_dir
    verdict = "partly" if only_lora and not full_model else "holds"
    return result("output_dir_holds_model", verdict, (
        f"output_dir gets checkpoints, but with LoRA a checkpoint holds no model: {ck.name} has {', '.join(names)}; "
        f"its {len(keys)} stored tensors are all LoRA matrices ({only_lora}). The base model stays where it was "
        f"loaded from; gluekit adds the final adapter in {adapter_dir.name}/."))


def check_lr_constant_between_checkpoints() -> ClaimCheck:
    """Read the LR of every step from the scheduler the Trainer builds; compare with the short run's log."""
    from ..plan import make_plan

    p = lora_plan(600)
    steps = (1, 500, 501, 1000, 3000)
    lrs = {s: p.lr_at(s) for s in steps}
    run = short_run()
    logged = [(e["step"], e["learning_rate"]) for e in run.log_history if "learning_rate" in e]
    sp = make_plan(run.config.training_arguments(), len(run.result.trainer.train_dataset))
    match = all(abs(lr - sp.lr_at(s)) <= 1e-12 + 1e-6 * lr for s, lr in logged)
    constant = lrs[1] == lrs[1000]
    return result("lr_constant_between_checkpoints", "holds" if constant else "wrong", (
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
    return result("log_level_info_logs_progress", verdict, (
        f"at log_level info transformers emitted {len(info)} info messages in 20 steps, {len(saves)} of them "
        f"'Saving model checkpoint ...', {len(loss_in_logs)} with a loss; the {len(printed_loss)} loss records came "
        f"from the Trainer's printer callback, which prints whatever log_level says."))


def check_logs_every_10_steps() -> ClaimCheck:
    p = lora_plan(600)
    run = short_run()
    logged = [e["step"] for e in run.log_history if "loss" in e]
    holds = p.log_steps == list(range(10, 3001, 10)) and logged == [10, 20]
    return result("logs_every_10_steps", "holds" if holds else "wrong", (
        f"lora.yaml's plan logs at {p.log_steps[0]}, {p.log_steps[1]}, ..., {p.log_steps[-1]} ({len(p.log_steps)} records); "
        f"the 20-step run with logging_steps 10 logged the loss at steps {logged}."))


SEED_LOG_LINE = re.compile(r"^\[INFO\] Step \d+: loss=")


def check_log_line_format() -> ClaimCheck:
    run = short_run()
    seed_like = [line for line in run.printed if SEED_LOG_LINE.match(line)]
    dict_lines = [line for line in run.printed if line.startswith("{'loss'")]
    record = next(e for e in run.log_history if "loss" in e)
    verdict = "wrong" if not seed_like and dict_lines else "holds"
    return result("log_line_format", verdict, (
        f"lines like '[INFO] Step 10: loss=...': {len(seed_like)}; the Trainer printed {len(dict_lines)} loss records "
        f"as Python dicts with keys {list(record)[:-1]} (stored in trainer_state.json's log_history with 'step')."))


def check_eval_every_500() -> ClaimCheck:
    from ..plan import make_plan

    p = lora_plan(600)
    run = short_run()
    evals = [e["step"] for e in run.log_history if "eval_samples" in e]
    sp = make_plan(run.config.training_arguments(), len(run.result.trainer.train_dataset))
    holds = p.eval_steps == list(range(500, 3001, 500)) and evals == sp.eval_steps
    return result("eval_every_500", "holds" if holds else "wrong", (
        f"lora.yaml's plan evaluates at {p.eval_steps}; the 20-step run (eval_steps 20) evaluated at {evals}, "
        f"as its plan said ({sp.eval_steps})."))


def check_eval_sees_8_samples() -> ClaimCheck:
    """Run the reference's evaluation (transformers' Seq2SeqTrainer.evaluate) at eval batch 4 and count what
    it scores, and shard its eval batches over 2 processes as accelerate does."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    ref = reference_eval_run(True)
    n, batch = ref.num_samples, lora_config().training_args["per_device_eval_batch_size"]
    shards = [list(BatchSamplerShard(BatchSampler(SequentialSampler(range(n)), batch, False), num_processes=2, process_index=i))
              for i in range(2)]
    covered = {i for s in shards for b in s for i in b}
    verdict = "wrong" if ref.scored == n and len(covered) == n and n > 2 * batch else "holds"
    return result("eval_sees_8_samples", verdict, (
        f"the reference's own evaluation (Seq2SeqTrainer.evaluate, per_device_eval_batch_size {batch}) of {n} eval samples "
        f"made {ref.batches} batches and compute_metrics scored {ref.scored} predictions; on 2 processes accelerate gives "
        f"process 0 the batches {shards[0]} and process 1 {shards[1]} (batches alternate), together all {len(covered)} "
        f"samples. The batch size sets how many go through at once, not how many are evaluated."))


def check_eval_reports_loss() -> ClaimCheck:
    """Run the reference's evaluation with lora.yaml's predict_with_generate and read what it logs."""
    ref = reference_eval_run(True)
    keys = sorted(k for k in (ref.metrics or {}) if k.startswith("eval_") and not k.endswith(("runtime", "_per_second", "preparation_time")))
    record = next(e for e in short_run().log_history if "eval_samples" in e)
    ours = "an eval_loss" if "eval_loss" in record else "no eval_loss"
    verdict = "wrong" if ref.metrics is not None and "eval_loss" not in ref.metrics else "holds"
    return result("eval_reports_loss", verdict, (
        f"the reference's own evaluation with predict_with_generate true logged {keys}, no eval_loss: its collator gives "
        f"the batch labels None, and its prediction_step deletes them (GLM-4 issue 699), so Seq2SeqTrainer has no loss to "
        f"report. gluekit's generating evaluation in the 20-step run logged {ours}; gluekit logs eval_loss when "
        f"predict_with_generate is false (notebook 09)."))


def check_predict_generates_text() -> ClaimCheck:
    """Run the reference's evaluation with predict_with_generate true and false and count generate() calls."""
    on, off = reference_eval_run(True), reference_eval_run(False)
    holds = on.generate_calls > 0 and on.scored == on.num_samples and off.generate_calls == 0
    outcome = f"then failed: {off.error}" if off.error else f"logged {sorted(off.metrics or {})}"
    return result("predict_generates_text", "holds" if holds else "wrong", (
        f"the reference's own evaluation called the model's generate() {on.generate_calls} times with true (one per batch) "
        f"and compute_metrics scored {on.scored} generated replies; with false it called generate() {off.generate_calls} "
        f"times and {outcome} (its prediction_step reads output_ids, which it sets only when generating)."))


def check_max_new_tokens_caps_replies() -> ClaimCheck:
    """Generate with the run's generation config and count the new tokens."""
    import torch

    run = short_run()
    model, tok = run.result.trainer.model, tokenizer()
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
    lora_cap = lora_config().training_args["generation_config"]["max_new_tokens"]
    return result("max_new_tokens_caps_replies", "holds" if new == cap else "wrong", (
        f"with max_new_tokens {cap} and no stop token, generation added exactly {new} tokens to a {len(prompt)}-token "
        f"prompt; lora.yaml's {lora_cap} is a cap in tokens (replies usually stop earlier at a stop token)."))


def check_lora_alpha_is_scaling() -> ClaimCheck:
    """Read PEFT's scaling on the run's LoRA layers and compare with alpha and r."""
    from ..lora import lora_scaling

    run = short_run()
    pc = run.config.peft_config
    scalings = {m.scaling["default"] for m in run.result.trainer.model.modules() if hasattr(m, "scaling") and isinstance(m.scaling, dict) and "default" in m.scaling}
    seed = lora_config().peft_config
    ours = lora_scaling(pc["r"], pc["lora_alpha"])
    is_alpha = scalings == {float(pc["lora_alpha"])}
    verdict = "partly" if not is_alpha and scalings == {ours} else ("holds" if is_alpha else "wrong")
    return result("lora_alpha_is_scaling", verdict, (
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
