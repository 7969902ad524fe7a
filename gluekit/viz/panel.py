"""A control panel for a LoRA run, in a notebook: open a config, edit it with ``gluekit check``'s messages
as you type, see the plan and the memory estimate follow, train with a live loss chart, stop, chat
with the result, save the edited config.

Everything it shows comes from the library: the config is a :class:`gluekit.config.draft.ConfigDraft`
(an edit is an ``-o FIELD=VALUE`` override, so the messages are the ones ``gluekit check FILE -o ...``
prints), the plan is :func:`gluekit.plan.make_plan` and :func:`gluekit.memory.plan_memory` (what
``gluekit plan`` prints), training is :func:`gluekit.train.train` in a background thread
(:class:`gluekit.background.BackgroundTraining`: the kernel stays free, Stop ends the run after the
current step) drawing :class:`gluekit.viz.training.LiveLossPlot`, and chat is :func:`gluekit.generate.chat`.

>>> panel = ControlPanel("tiny.yaml")        # in a notebook cell; the cell's value shows the panel
>>> panel.set_field("training_args.max_steps", "20")
>>> print(panel.messages_text()); print(panel.plan_text)
"""
from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as w
from transformers import TrainerCallback

from ..config import shipped_configs
from ..config.draft import ConfigDraft
from ..errors import GluekitError

# (field path, what it is) shown as editable rows; a field the config lacks shows empty
FIELDS = (
    ("data_config.train_file", "in the data folder"),
    ("data_config.val_file", "null: no evaluation data"),
    ("data_config.test_file", "null: no test at the end"),
    ("max_input_length", "prompt tokens kept"),
    ("max_output_length", "reply tokens kept"),
    ("combine", "how a conversation becomes samples"),
    ("training_args.max_steps", "optimizer steps"),
    ("training_args.learning_rate", "peak learning rate"),
    ("training_args.per_device_train_batch_size", "samples per step and device"),
    ("training_args.gradient_accumulation_steps", "batches per optimizer step"),
    ("training_args.logging_steps", "log every N steps"),
    ("training_args.eval_strategy", "no, steps or epoch"),
    ("training_args.eval_steps", "evaluate every N steps"),
    ("training_args.save_steps", "checkpoint every N steps"),
    ("training_args.output_dir", "where checkpoints and the adapter go"),
    ("training_args.report_to", "none, tensorboard, trackio ..."),
    ("peft_config.r", "LoRA rank"),
    ("peft_config.lora_alpha", "LoRA scaling numerator"),
    ("peft_config.lora_dropout", "dropout on the LoRA input"),
    ("peft_config.target_modules", "layers that get an adapter"),
)
MODEL_HINT = "empty: the embedded tiny GLM; glm-4-9b: its shape (plan only); or a model folder"
DATA_HINT = "empty: the embedded demo data; or a folder with the data_config files"


def _pre(text: str, color: str = "inherit") -> str:
    return f'<pre style="margin:0;white-space:pre-wrap;color:{color}">{html.escape(text)}</pre>'


class ControlPanel:
    """The panel's widgets (:attr:`widget`) and its state: :attr:`draft`, :attr:`problems`, :attr:`plan_text`, :attr:`run`.

    ``config``: a file or a shipped name (``gluekit configs``); ``model``/``data_dir``: as ``gluekit
    train`` takes them (None: the tiny GLM, the demo data); ``edits``: field -> YAML text, applied as
    if typed; ``overwrite``: the initial state of the "start fresh" box.
    """

    def __init__(self, config: str | Path = "tiny.yaml", model: str | None = None, data_dir: str | Path | None = None,
                 edits: dict[str, str] | None = None, overwrite: bool = False):
        self.draft = ConfigDraft(config)
        self.cfg = None
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.plan_text = ""
        self.run = None
        self.history: list[dict] = []
        self._samples: dict[Path, int] = {}
        self._quiet = False  # no refresh while fields are filled in from a newly opened file
        S = {"description_width": "230px"}
        L = w.Layout(width="100%")
        self.source = w.Combobox(value=str(config), options=[c.name for c in shipped_configs() if c.name.endswith(".yaml")],
                                 description="config", ensure_option=False, layout=w.Layout(width="340px"))
        self.open_button = w.Button(description="Open", icon="folder-open", layout=w.Layout(width="90px"))
        self.model = w.Text(value=model or "", placeholder=MODEL_HINT, description="model", layout=L)
        self.data_dir = w.Text(value=str(data_dir or ""), placeholder=DATA_HINT, description="data folder", layout=L)
        self.fields = {f: w.Text(description=f, placeholder=hint, style=S, layout=w.Layout(width="98%"), continuous_update=True)
                       for f, hint in FIELDS}
        self.messages = w.HTML().add_class("gluekit-panel-messages")
        self.plan = w.HTML().add_class("gluekit-panel-plan")
        self.overwrite = w.Checkbox(value=overwrite, description="start fresh (delete output_dir's checkpoints)",
                                    indent=False, layout=w.Layout(width="320px"))
        self.start_button = w.Button(description="Start training", icon="play", button_style="success")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="step", layout=w.Layout(width="420px"))
        self.status = w.HTML("not started").add_class("gluekit-panel-status")
        self.chart = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.chat_input = w.Text(placeholder="a message to the trained model", description="you", layout=L)
        self.send_button = w.Button(description="Send", icon="paper-plane", disabled=True)
        self.chat_log = w.HTML().add_class("gluekit-panel-chat")
        self.save_path = w.Text(value="my_lora.yaml", description="save as", layout=w.Layout(width="420px"))
        self.save_button = w.Button(description="Save", icon="save")
        self.save_status = w.HTML().add_class("gluekit-panel-saved")

        self.open_button.on_click(lambda _: self.open(self.source.value))
        for f, box in self.fields.items():
            box.observe(lambda change, f=f: self._edited(f, change["new"]), names="value")
        for box in (self.model, self.data_dir):
            box.observe(lambda change: self.refresh(), names="value")
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.send_button.on_click(lambda _: self.send())
        self.chat_input.on_submit(lambda _: self.send())
        self.save_button.on_click(lambda _: self.save())

        self.widget = w.VBox([
            w.HBox([self.source, self.open_button]), self.model, self.data_dir,
            w.HBox([w.VBox(list(self.fields.values()), layout=w.Layout(width="48%")),
                    w.VBox([self.messages, self.plan], layout=w.Layout(width="52%", padding="0 0 0 12px"))]),
            w.HBox([self.start_button, self.stop_button, self.overwrite]),
            w.HBox([self.progress, self.status]), self.chart,
            w.HBox([self.chat_input, self.send_button]), self.chat_log,
            w.HBox([self.save_path, self.save_button]), self.save_status,
        ]).add_class("gluekit-panel")
        self._fill_fields()
        for f, text in (edits or {}).items():
            self.set_field(f, str(text))
        self.refresh()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # ---------------------------------------------------------------- the config

    def open(self, config: str | Path) -> None:
        """Open another config file (or shipped name); edits not saved are dropped."""
        try:
            self.draft = ConfigDraft(config)
        except GluekitError as e:
            self.messages.value = _pre(str(e), "#b00020")
            return
        self._fill_fields()
        self.refresh()

    def _fill_fields(self) -> None:
        self._quiet = True
        try:
            for f, box in self.fields.items():
                box.value = self.draft.value_text(f)
        finally:
            self._quiet = False

    def _edited(self, field: str, text: str) -> None:
        if self._quiet:
            return
        self.draft.set(field, text)
        self.refresh()

    def set_field(self, field: str, text: str) -> None:
        """Type ``text`` into a field (one of :data:`FIELDS`, or any other field path, which gets no row)."""
        if field in self.fields:
            self.fields[field].value = text  # its observer edits the draft and refreshes
        else:
            self.draft.set(field, text)
            self.refresh()

    def _model(self) -> str | None:
        return self.model.value.strip() or None

    def _data_dir(self) -> Path:
        if self.data_dir.value.strip():
            return Path(self.data_dir.value.strip())
        from ..tiny import DEMO_DIR

        return DEMO_DIR

    def refresh(self) -> None:
        """Check the edited config as ``gluekit check`` does, then plan it as ``gluekit plan`` does."""
        self.cfg, self.problems = self.draft.check(self._data_dir())
        self.notes = [n for n in (self.cfg.notes if self.cfg else []) if n != self.draft.shipped_note]
        plan_problem = None
        if self.cfg is not None:
            try:
                self.plan_text = self._plan(self.cfg)
            except GluekitError as e:  # a LoRA target the model lacks ...: the config's own problem
                self.problems, self.plan_text = list(e.problems), ""
            except (OSError, ValueError, NotImplementedError) as e:
                plan_problem = f"no plan: {e}"
                self.plan_text = ""
        else:
            self.plan_text = ""
        if self.problems:
            self.messages.value = _pre("\n".join(self.problems), "#b00020")
        else:
            self.messages.value = _pre("\n".join(["config OK" + (f" ({len(self.draft.edits)} edits)" if self.draft.edits else "")]
                                                 + [f"note: {n}" for n in self.notes]), "#1b5e20")
        self.plan.value = _pre(self.plan_text or plan_problem or "no plan until the config is valid", "inherit")
        self.start_button.disabled = bool(self.problems) or self.running

    def messages_text(self) -> str:
        """What the messages box says, as text: each problem, or 'config OK' and the notes."""
        if self.problems:
            return "\n".join(self.problems)
        return "\n".join(["config OK"] + [f"note: {n}" for n in self.notes])

    def _plan(self, cfg) -> str:
        from ..data import data_file, read_jsonl
        from ..memory import model_config_for, plan_memory, planned_dtype
        from ..models import TINY
        from ..plan import make_plan

        train_file = data_file(self._data_dir(), cfg.data_config.train_file)
        if train_file not in self._samples:
            self._samples[train_file] = len(read_jsonl(train_file))
        plan = make_plan(cfg.training_arguments(portable=True), self._samples[train_file])
        model = self._model()
        name = "tiny GLM" if model in (None, TINY) else model
        try:
            memory = plan_memory(cfg, model_config_for(model), model_name=name, dtype=planned_dtype(model)).summary()
        except NotImplementedError as e:
            memory = f"peak memory: not estimated ({e})"
        return f"{plan.summary()}\n{memory}"

    # ---------------------------------------------------------------- training

    @property
    def running(self) -> bool:
        return self.run is not None and self.run.running

    def start(self) -> bool:
        """Start training the edited config in a background thread; False (and why, in the status) if it cannot."""
        from ..background import BackgroundTraining
        from .training import LiveLossPlot

        if self.running:
            return False
        self.refresh()
        if self.problems or self.cfg is None:
            self.status.value = _pre("fix the config's problems first", "#b00020")
            return False
        self.live = LiveLossPlot(display=False)
        self.progress.value, self.progress.max = 0, 1
        self.run = BackgroundTraining(self.cfg, self._data_dir(), self._model(), callbacks=[self.live, _PanelUpdates(self)],
                                      on_done=self._finished, overwrite=self.overwrite.value, print_logs=False,
                                      disable_tqdm=True)
        self.history = []
        self.chat_log.value = ""
        self.send_button.disabled = True
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.status.value = _pre("loading the model ...")
        self.run.start()
        return True

    def stop(self) -> None:
        """Stop the run after the step in progress (the adapter is still saved)."""
        if self.running:
            self.run.stop()
            self.status.value = _pre(f"stopping after step {self.progress.value} ...")

    def _finished(self, run) -> None:
        self.stop_button.disabled = True
        self.start_button.disabled = bool(self.problems)
        if run.error:
            self.status.value = _pre(run.error, "#b00020")
            return
        r = run.result
        step = r.trainer.state.global_step
        how = f"stopped after step {run.stopped_at}" if run.stopped_at else f"done: {step} steps"
        losses = [e["loss"] for e in r.trainer.state.log_history if "loss" in e]
        how += f", last logged loss {losses[-1]:.3f}" if losses else ""
        scores = ", ".join(f"{k.removeprefix('test_')} {v:.1f}" for k, v in r.test_metrics.items()
                           if k in ("test_exact_match", "test_rouge-l"))
        self.status.value = _pre(f"{how}; adapter saved to {r.adapter_dir}" + (f"; test {scores}" if scores else ""), "#1b5e20")
        self.send_button.disabled = False

    # ---------------------------------------------------------------- chat and save

    def send(self, message: str | None = None) -> str | None:
        """Send ``message`` (default: the chat box's text) to the trained model; returns its reply."""
        from ..generate import chat

        text = (message if message is not None else self.chat_input.value).strip()
        if not text:
            return None
        if self.run is None or self.run.result is None or self.running:
            self.chat_log.value = _pre("train first: the chat talks to the model a finished run leaves", "#b00020")
            return None
        trainer = self.run.result.trainer
        trainer.model.eval()
        self.history.append({"role": "user", "content": text})
        reply = chat(trainer.model, trainer.processing_class, self.history, max_new_tokens=64)
        self.history.append({"role": "assistant", "content": reply})
        self.chat_input.value = ""
        self.chat_log.value = _pre("\n".join(f"{'you' if m['role'] == 'user' else 'glm'}> {m['content']}" for m in self.history))
        return reply

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the edited config (comments kept) to ``path`` (default: the save box's path)."""
        target = Path(path if path is not None else self.save_path.value.strip())
        try:
            out = self.draft.save(target)
        except (GluekitError, OSError) as e:
            self.save_status.value = _pre(f"not saved: {e}", "#b00020")
            return None
        verdict = "no problem" if not self.problems else f"{len(self.problems)} problem(s), as above"
        self.save_status.value = _pre(f"saved {out} ({len(self.draft.edits)} edits); `gluekit check {out}` finds {verdict}")
        return out


class _PanelUpdates(TrainerCallback):
    """Moves the progress bar, says the step and loss, and puts LiveLossPlot's latest drawing into the chart."""

    def __init__(self, panel: ControlPanel):
        self.panel = panel

    def on_train_begin(self, args, state, control, **kwargs):
        self.panel.progress.max = max(1, state.max_steps)
        self.panel.progress.value = state.global_step
        self.panel.status.value = _pre(f"training: step {state.global_step} of {state.max_steps}")

    def on_step_end(self, args, state, control, **kwargs):
        self.panel.progress.value = state.global_step
        if not self.panel.run.flag.event.is_set():
            loss = self.panel.live.losses[-1] if self.panel.live.losses else None
            self.panel.status.value = _pre(f"training: step {state.global_step} of {state.max_steps}"
                                           + (f", loss {loss:.3f}" if loss is not None else ""))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.panel.live.figure is not None:
            self.panel.chart.value = self.panel.live.png()

    def on_train_end(self, args, state, control, **kwargs):
        self.on_log(args, state, control)
        if state.global_step < state.max_steps or self.panel.run.flag.event.is_set():
            return
        self.panel.status.value = _pre("evaluating the test set and saving the adapter ...")


__all__ = ["FIELDS", "ControlPanel"]
