"""The ``gluekit`` command: check, plan, train, chat, merge, plot, configs, doctor.

With no ``--model`` the embedded tiny GLM runs; with no ``--data-dir`` the embedded demo data.
``gluekit train DATA_DIR MODEL CONFIG [RESUME]`` also accepts GLM-4's ``finetune.py`` order.
Input errors print every problem and exit 1, without a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from .errors import GluekitError


def _common(p: argparse.ArgumentParser, config: bool = True) -> None:
    if config:
        p.add_argument("config", help="lora.yaml-style config file")
    p.add_argument("--data-dir", default=None, help="folder the data_config files are relative to (default: the demo data)")
    p.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. -o training_args.max_steps=200 (repeatable)")


def _data_dir(args) -> Path:
    if args.data_dir:
        return Path(args.data_dir)
    from .tiny import DEMO_DIR

    return DEMO_DIR


def cmd_check(args) -> int:
    from .config import load_config
    from .errors import ConfigError
    from .models import load_tokenizer
    from .train import prepare_data

    data_dir = _data_dir(args)
    cfg = load_config(args.config, args.overrides, data_dir=data_dir, check_machine=True)
    model_lines, model_notes = _check_model(cfg, args.model, args.trust_remote_code)
    print(f"config {args.config}: OK")
    for line in model_lines:
        print(line)
    for note in cfg.notes + model_notes:
        print(f"note: {note}")
    if args.resume is not None:
        _check_resume(cfg, args.resume)
    tok = load_tokenizer(args.model, args.trust_remote_code)
    data = prepare_data(cfg, data_dir, tok, on_empty="raise" if args.strict else "drop")
    print(f"data {data_dir}: train {data.report.summary()}")
    if data.report.empty:
        lines = ", ".join(map(str, data.report.empty[:20])) + (" ..." if len(data.report.empty) > 20 else "")
        print(f"note: {len(data.report.empty)} training sample(s) lose every reply token to the length limit and will be "
              f"skipped: {cfg.data_config.train_file} lines {lines}. Raise max_input_length/max_output_length, "
              "or use --strict to fail on them.")
    print(f"eval samples: val {len(data.eval_rows)}, test {len(data.test_rows)}")
    disk, why_not = _disk_plan(cfg, args.model, len(data.train), tokenizer=tok)
    print(disk.summary() if disk else f"disk: not estimated ({why_not})")
    if disk and disk.problem():
        raise _in_config_file(cfg, ConfigError([disk.problem()]))
    return _card_preflight(cfg, args)


def _card_preflight(cfg, args) -> int:
    """check/train on a machine with a card: its name, memory and bf16 against the plan's peak (1 on a
    4-bit compute dtype the card cannot do). Prints nothing without a card."""
    from . import cards

    card = cards.present_card()
    if card is None:
        return 0
    problem = cards.compute_dtype_problem(card, cfg.quantization)
    if problem:
        print(problem)
        return 1
    from .memory import model_config_for, planned_dtype

    try:
        print(cards.fit(cfg, card, model_config_for(args.model), dtype=planned_dtype(args.model)).summary())
    except (NotImplementedError, FileNotFoundError) as e:
        print(f"card: {card.describe()}; peak memory not estimated ({e})")
    return 0


def _check_resume(cfg, resume) -> None:
    """What ``gluekit train --resume RESUME`` would start from: checkpoints checked as a resume checks them."""
    from .checkpoints import resume_point
    from .runlock import describe, read_record

    point = resume_point(cfg.output_dir, resume, overwrite=False)  # raises the error train would raise
    for line in point.lines():
        print(f"resume: {line}")
    target = point.checkpoint.name if point.checkpoint else "nothing (a fresh start)"
    print(f"resume: --resume {resume} would start from {target} in {cfg.output_dir}")
    record = read_record(cfg.output_dir)
    if record:
        print(f"note: {cfg.output_dir} holds the lock record of {describe(record)}: a run is using it, "
              "or one was killed there (the next run takes a dead one's lock over).")


def _disk_plan(cfg, model, samples: int, tokenizer=None, devices: int = 1, dtype: str | None = None, trainables=None):
    """``(DiskPlan, None)``: the bytes the run writes against output_dir's free space; or ``(None, why not)``.

    No weights load: the parameters are counted on the meta device (:mod:`gluekit.memory`).
    """
    from .disk import plan_disk_for_config, tokenizer_bytes_in, tokenizer_bytes_of
    from .memory import model_config_for, planned_dtype
    from .models import model_path
    from .plan import make_plan

    try:
        model_config = model_config_for(model)
    except Exception as e:  # a hub id without a local copy ...: not estimated, not a failure
        return None, (str(e).strip().splitlines() or [type(e).__name__])[0]
    plan = make_plan(cfg.training_arguments(portable=True), samples, devices)
    if tokenizer is not None:
        tok_bytes = tokenizer_bytes_of(tokenizer)
    else:
        try:
            tok_bytes = tokenizer_bytes_in(model_path(model))
        except Exception:  # a bare shape name such as glm-4-9b: not counted, with a note
            tok_bytes = None
    try:
        return plan_disk_for_config(cfg, plan, model_config, dtype=dtype or planned_dtype(model), tokenizer=tok_bytes,
                                    devices=devices, trainables=trainables), None
    except NotImplementedError as e:
        return None, str(e)


def _check_model(cfg, model, trust_remote_code: bool) -> tuple[list[str], list[str]]:
    """Which GLM-4 family ``model`` is and what that means for the config: ``(lines, notes)``.

    Reads config.json and the tokenizer files as text (:func:`gluekit.families.inspect_model`;
    no weights, no code from the folder), says what a remote-code folder needs
    (:func:`gluekit.remote_code.diagnosis`: a :class:`GluekitError` when it cannot load as asked),
    then checks LoRA ``target_modules`` against the model's layer names on a meta-device copy and
    gives both q/k/v parameter counts. A target that matches nothing raises the config's
    :class:`ConfigError`; a model whose shape cannot be built skips the check with a note.
    """
    from .errors import ConfigError
    from .families import inspect_model, shape_config
    from .remote_code import diagnosis

    info = inspect_model(model)
    if info.family is None:
        raise GluekitError(info.summary())
    problems, notes = diagnosis(info, trust_remote_code)
    if problems:
        raise GluekitError(problems)
    lines = [info.summary()]
    peft = cfg.peft_config_object()
    if peft is None or (cfg.peft_config or {}).get("peft_type") != "LORA":
        return lines, notes
    try:
        from .models import meta_model
        from .quiet import quiet_progress

        with quiet_progress():
            net = meta_model(shape_config(info))
    except Exception as e:  # a shape transformers cannot build here: the check is skipped, not failed
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return lines, notes + [f"peft_config.target_modules not checked against the model ({first})."]
    from .lora import qkv_counts, resolve_targets

    tm = cfg.peft_config.get("target_modules")
    try:
        res = resolve_targets(net, tm, peft.r)
    except ConfigError as e:
        raise _in_config_file(cfg, e) from None
    trains = res.target_modules if isinstance(res.target_modules, list) else [str(res.target_modules)]
    lines.append(f"  lora.yaml: target_modules {tm} trains {', '.join(trains)} here; this family names q, k and v "
                 f"{', '.join(info.family.qkv_targets)}.")
    counts = qkv_counts(net, peft.r)
    if counts:
        lines.append(f"  at r={peft.r}, LoRA on q/k/v trains {counts[0]:,d} parameters as three adapters (q_proj, k_proj, "
                     f"v_proj) and {counts[1]:,d} as one on the fused query_key_value (remote code).")
    return lines, notes + ([res.note] if res.note else [])


def _in_config_file(cfg, e):
    """A ConfigError found after loading (against the model), reported as the config file's own problems."""
    from .errors import ConfigError

    return ConfigError(e.problems, cfg.path.name if cfg.path else None)


def cmd_plan(args) -> int:
    from .config import load_config
    from .data import data_file, read_jsonl
    from .plan import make_plan

    data_dir = _data_dir(args)
    cfg = load_config(args.config, args.overrides, data_dir=data_dir)
    n = args.samples if args.samples else len(read_jsonl(data_file(data_dir, cfg.data_config.train_file)))
    plan = make_plan(cfg.training_arguments(portable=True), n, args.devices)  # no GPU needed to plan a GPU run
    for note in cfg.notes:
        print(f"note: {note}", file=sys.stderr if args.json else sys.stdout)
    memory, why_not = _memory_plan(cfg, args)
    disk, disk_why_not = _disk_plan(cfg, args.model, n, devices=args.devices, dtype=args.dtype,
                                    trainables=memory.trainables if memory else None)
    fit = _card_fit(cfg, args) if memory else None
    evaluation, no_eval = _eval_plan(cfg, plan, data_dir, args)
    if args.json:
        d = plan.to_dict()
        if not args.full:
            d.pop("learning_rates")
        d["memory"] = memory.to_dict() if memory else {"skipped": why_not}
        d["disk"] = disk.to_dict() if disk else {"skipped": disk_why_not}
        if fit is not None:
            d["card"] = fit.to_dict()
        d["evaluation"] = evaluation.to_dict() if evaluation else {"skipped": no_eval}
        print(json.dumps(d, indent=2))
    else:
        print(plan.summary())
        print(evaluation.summary() if evaluation else f"evaluation: {no_eval}")
        print(memory.summary() if memory else f"peak memory: not estimated ({why_not})")
        print(disk.summary() if disk else f"disk: not estimated ({disk_why_not})")
        if fit is not None:
            print(fit.summary())
    return 0


def _card_fit(cfg, args):
    """``--card`` (or the present card): does the plan fit, and the smallest change that makes it fit."""
    from . import cards
    from .memory import model_config_for, planned_dtype

    from .errors import ConfigError

    try:
        card = cards.parse_card(args.card)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if card is None:
        return None
    return cards.fit(cfg, card, model_config_for(args.model), dtype=args.dtype or planned_dtype(args.model), devices=args.devices)


def _eval_plan(cfg, plan, data_dir, args):
    """(EvalPlan, None), or (None, why) when the config evaluates nothing: the eval samples of
    val_file and test_file counted (no tokenizer), generation timed at ``--eval-seconds``."""
    from .data import count_eval_samples, data_file, read_jsonl
    from .plan import plan_evaluation

    dc = cfg.data_config
    if not plan.eval_steps and dc.test_file is None:
        return None, "none (no evaluation during training and no test_file)"

    def count(name):
        return count_eval_samples(read_jsonl(data_file(data_dir, name)), cfg.combine, cfg.generates) if name else 0

    return plan_evaluation(cfg, plan, count(dc.val_file), count(dc.test_file), args.eval_seconds), None


def _memory_plan(cfg, args):
    """(MemoryPlan, None), or (None, why) for a PEFT method the estimate does not model.

    A config problem found on the way (a LoRA target that matches no layer of the model) is raised
    as the config's own error: ``gluekit plan`` reports it and exits 1.
    """
    from .errors import ConfigError
    from .memory import model_config_for, plan_memory, planned_dtype

    model_config = model_config_for(args.model)
    name = "tiny GLM" if args.model in (None, "tiny") else str(args.model)
    try:
        return plan_memory(cfg, model_config, model_name=name, dtype=args.dtype or planned_dtype(args.model),
                           devices=args.devices), None
    except ConfigError as e:
        raise _in_config_file(cfg, e) from None
    except NotImplementedError as e:
        return None, str(e)


def cmd_train(args) -> int:
    from .train import train

    pos = args.positional
    if len(pos) == 1:
        config, data_dir, model, resume = pos[0], _data_dir(args), args.model, args.resume
    elif len(pos) in (3, 4):  # GLM-4 finetune.py order: DATA_DIR MODEL CONFIG [RESUME]
        data_dir, model, config = pos[:3]
        resume = pos[3] if len(pos) == 4 else args.resume
    else:
        raise GluekitError("train takes CONFIG, or DATA_DIR MODEL CONFIG [RESUME] as GLM-4's finetune.py does.")
    result = train(config, data_dir, model, resume=resume, overrides=args.overrides, overwrite=args.overwrite,
                   trust_remote_code=args.trust_remote_code)
    if not result.trainer.is_world_process_zero():
        return 0
    print(f"adapter saved to {result.adapter_dir}")
    if result.test_metrics:
        print("test: " + ", ".join(f"{k} {v:.2f}" for k, v in result.test_metrics.items() if isinstance(v, float)))
    return 0


def _in_process_group() -> bool:
    """True inside a torchrun job whose process group is set up (torch already imported by then)."""
    dist = sys.modules.get("torch.distributed")
    return bool(dist is not None and dist.is_available() and dist.is_initialized())


def _leave_process_group(rc: int) -> None:
    """End a torchrun rank now, with ``rc``, without tearing down Python.

    The process group dies with the objects that hold it (DDP's reducer), during garbage collection
    or interpreter shutdown, while the main thread holds the GIL. Its destructor joins gloo's worker
    threads, and a worker that is still freeing the last collective's tensors waits for the GIL:
    measured here, rank 0 hung forever after a complete run (and at shutdown a rank can instead die
    with "terminate called without an active exception", SIGABRT, which torchrun reports as a
    failure; pytorch/pytorch#190489). ``destroy_process_group()`` does not help: the reducer still
    holds the group. Everything gluekit writes is on disk when training returns (files are closed,
    checkpoints renamed), so the rank flushes its streams and logs and exits.
    """
    import logging

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(rc)


def cmd_chat(args) -> int:
    from .device import where
    from .generate import chat, load_with_adapter

    model, tok = load_with_adapter(args.model, args.adapter, args.trust_remote_code, device=args.device)
    print(f"gluekit chat: the model {where(model)}", file=sys.stderr, flush=True)  # stdout keeps the replies only
    history: list[dict] = []
    interactive = not args.message and sys.stdin.isatty()
    if interactive:
        print("type a message, an empty line or Ctrl-D to stop", flush=True)
    for text in (args.message or sys.stdin):
        text = text.strip()
        if not text:
            break
        history.append({"role": "user", "content": text})
        reply = chat(model, tok, history, max_new_tokens=args.max_new_tokens)
        history.append({"role": "assistant", "content": reply})
        print(f"glm> {reply}", flush=True)
    return 0


def cmd_merge(args) -> int:
    from .generate import merge_adapter

    out = merge_adapter(args.adapter, args.out, args.model, args.trust_remote_code, device=args.device, report=print)
    print(f"merged model saved to {out}")
    return 0


def cmd_plot(args) -> int:
    from .viz.training import save_run_plot

    out = args.out or Path(args.run_dir) / "training_curves.png"
    print(f"plot saved to {save_run_plot(args.run_dir, out)}")
    return 0


def cmd_configs(args) -> int:
    from .config import shipped_configs

    shipped = shipped_configs()
    width = max(len(c.name) for c in shipped)
    print("configs shipped with gluekit (a bare name such as `gluekit check tiny.yaml` uses them "
          "unless the current folder holds a file of that name):")
    for c in shipped:
        print(f"  {c.name:<{width}}  {c.description}\n  {'':<{width}}  {c.path}")
    return 0


def cmd_doctor(args) -> int:
    from .doctor import diagnose

    report = diagnose()
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.text())
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gluekit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p):
        p.add_argument("--model", default=None, help="local folder or hub id (default: the embedded tiny GLM)")
        p.add_argument("--trust-remote-code", action="store_true",
                       help="run Python code shipped with the weights (needed only for THUDM/glm-4-9b-chat, not -hf)")

    def device_arg(p):
        p.add_argument("--device", default=None,
                       help="where the model runs: cpu, cuda, cuda:N (default: $GLUEKIT_DEVICE, else the GPU when there "
                            "is one, in bf16; else the CPU, in float32)")

    p = sub.add_parser("check", help="validate config and data; exit 1 listing every problem")
    _common(p)
    model_args(p)
    p.add_argument("--strict", action="store_true", help="fail on samples that lose every reply token (default: count and drop)")
    p.add_argument("--resume", default=None, metavar="latest|STEP",
                   help="also check the checkpoints `gluekit train --resume` would use (files whole and loadable), before any model loads")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("plan", help="steps, epochs, log/eval/save steps and learning rates before training")
    _common(p)
    p.add_argument("--devices", type=int, default=1, help="data-parallel processes (GPUs)")
    p.add_argument("--samples", type=int, default=None, help="training samples (default: count the train file)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--full", action="store_true", help="with --json: include the LR of every step")
    p.add_argument("--model", default=None,
                   help="model whose peak memory to estimate: a GLM-4-9B shape by name (glm-4-9b / glm-4-9b-chat-hf, "
                        "glm-4-9b-0414, glm-4-9b-chat for the remote-code model), a local folder with config.json, or "
                        "nothing for the embedded tiny GLM; no weights are loaded")
    p.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"],
                   help="load dtype of the weights (default: float32 for the tiny GLM on CPU, bfloat16 otherwise)")
    p.add_argument("--card", default=None,
                   help="does it fit on this card: a memory (24GB), a name (T4, V100, RTX3090, A100) or present "
                        "(the default: this machine's card, if any); shows the smallest change that makes it fit")
    p.add_argument("--eval-seconds", type=float, default=None, metavar="S",
                   help="seconds to generate one eval reply on one device, for the evaluation time (default 4.0: GLM-4-9B "
                        "in GLM-4 issue 488; measure yours as eval_runtime / eval_samples of a first evaluation)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("train", help="fine-tune: CONFIG, or DATA_DIR MODEL CONFIG [RESUME] (GLM-4's order)")
    p.add_argument("positional", nargs="+", metavar="ARG")
    p.add_argument("--data-dir", default=None)
    p.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    model_args(p)
    p.add_argument("--resume", default=None, help="latest | STEP | no (default: fresh; refuses a folder holding checkpoints)")
    p.add_argument("--overwrite", action="store_true", help="start fresh even if output_dir holds checkpoints (deletes them)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("chat", help="talk to the base model or base + adapter")
    model_args(p)
    p.add_argument("--adapter", default=None, help="folder of a saved LoRA adapter")
    p.add_argument("-m", "--message", action="append", default=[], help="a user message (repeat for several turns); else read stdin")
    p.add_argument("--max-new-tokens", type=int, default=128)
    device_arg(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("merge", help="fold an adapter into the base weights and save a plain model")
    model_args(p)
    p.add_argument("--adapter", required=True)
    p.add_argument("--out", required=True)
    device_arg(p)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("plot", help="draw a finished run's loss, learning rate and eval metrics into a PNG")
    p.add_argument("run_dir", help="the run's output_dir (holding trainer_state.json)")
    p.add_argument("--out", default=None, help="PNG file to write (default: RUN_DIR/training_curves.png)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("configs", help="list the configs shipped with gluekit: name, what it is for, path")
    p.set_defaults(func=cmd_configs)

    p = sub.add_parser("doctor", help="installed versions against the tested ones (requirements/lock.txt), the device "
                                      "and bf16; exit 1 listing each problem with its fix")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``gluekit`` command and return its exit code.

    Inside a torchrun process group the process ends here with that code (see
    :func:`_leave_process_group`) instead of returning.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # GLM-4's order puts RESUME last, possibly after -o options: argparse leaves it over.
        if args.command == "train" and all(not x.startswith("-") for x in extra):
            args.positional += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not hasattr(args, "model"):
        args.model, args.trust_remote_code = None, False
    from .quantization import quiet_bitsandbytes

    try:
        with quiet_bitsandbytes():  # bitsandbytes' import-time lines (peft imports it when installed), this command only
            rc = _run(args)
    except BaseException:
        if not _in_process_group():
            raise
        traceback.print_exc()  # a bug's traceback, then out without the teardown that can hang
        rc = 1
    if _in_process_group():
        _leave_process_group(rc)
    return rc


def _run(args) -> int:
    """Run the command; input and machine errors become a message and exit code 1, never a traceback."""
    try:
        return args.func(args)
    except GluekitError as e:
        print(f"gluekit {args.command}: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, NotADirectoryError) as e:
        print(f"gluekit {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        # train() raises TrainingInterrupted, which says where training stopped and whether it can go on;
        # any other command has nothing to resume
        from .errors import TrainingInterrupted

        if isinstance(e, TrainingInterrupted):
            print(f"gluekit {args.command}: {e}", file=sys.stderr)
            return 128 + e.signal_number
        print(f"gluekit {args.command}: interrupted.", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, permission denied, model download failed ...: the machine, not gluekit
        import errno

        fix = {errno.ENOSPC: " Free some disk space and run the command again (`gluekit train` reports a full disk "
                             "itself, with the last complete checkpoint).",
               errno.EACCES: " Fix the folder's permissions or choose another output_dir.",
               errno.EPERM: " Fix the folder's permissions or choose another output_dir."}.get(e.errno, "")
        print(f"gluekit {args.command}: {e}.{fix}", file=sys.stderr)
        return 1
    except Exception as e:
        if type(e).__name__ != "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA); anything else is a bug: traceback
            raise
        print(f"gluekit {args.command}: out of GPU memory ({str(e).splitlines()[0] if str(e) else 'no details'}). "
              "Lower per_device_train_batch_size (raise gradient_accumulation_steps to keep the global batch), "
              "max_input_length/max_output_length or per_device_eval_batch_size, then `--resume latest`.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
