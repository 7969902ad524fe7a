"""Experiment trackers named by ``training_args.report_to``: the package each needs, how it runs offline,
and the one gluekit adapts.

``report_to`` goes to transformers' Trainer as written. One exception: transformers' own swanlab
integration asks ``swanlab.get_run() is None`` before it starts a run, and from swanlab 0.8 on
``get_run()`` raises instead ("No active Run"), so ``report_to: swanlab`` crashes in ``on_train_begin``.
With swanlab >= 0.8 installed, :func:`tracker_callbacks` takes swanlab out of ``report_to`` and gives
swanlab's own ``SwanLabCallback`` instead (it calls ``swanlab.init`` itself); with an older swanlab the
Trainer's integration runs unchanged. The package is found with ``importlib.metadata``: nothing is imported
unless swanlab is both named and installed.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from packaging.version import Version


@dataclass(frozen=True)
class Tracker:
    package: str
    """What ``pip install`` needs."""
    offline: str
    """How it runs without a network (what it writes, how to view it)."""


TRACKERS = {
    "tensorboard": Tracker("tensorboard", "always local: event files under OUTPUT_DIR/runs/; view with "
                                          "`tensorboard --logdir OUTPUT_DIR/runs`"),
    "trackio": Tracker("trackio", "local by default: SQLite under $HF_HOME/trackio (TRACKIO_DIR); view with "
                                  "`trackio show`; uploads only when TRACKIO_SPACE_ID is set"),
    "wandb": Tracker("wandb", "WANDB_MODE=offline: runs under ./wandb, `wandb sync` uploads them later "
                              "(without a mode or an API key it stops at once)"),
    "mlflow": Tracker("mlflow", "MLFLOW_TRACKING_URI=sqlite:///mlflow.db MLFLOW_DISABLE_TELEMETRY=true "
                                "(a file: URI also needs MLFLOW_ALLOW_FILE_STORE=true)"),
    "swanlab": Tracker("swanlab", "SWANLAB_MODE=offline (run files under ./swanlog, `swanlab sync` uploads) "
                                  "or local (`swanlab watch ./swanlog`, needs swanlab[dashboard])"),
}
SWANLAB_OWN_CALLBACK = Version("0.8")
"""From this swanlab version on, gluekit passes swanlab's own callback instead of transformers' one."""


def installed_version(package: str) -> str | None:
    """The installed version of ``package``, or None (read from its metadata; nothing is imported)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def named(report_to) -> list[str]:
    """The tracker names in a ``report_to`` value (a string or a list; "none" and "all" name none)."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    return [n for n in names if isinstance(n, str) and n not in ("none", "all")]


def missing_message(name: str) -> str:
    """The problem/note for a tracker whose package is not installed here."""
    t = TRACKERS.get(name)
    package = t.package if t else name
    offline = f" Offline: {t.offline}." if t else ""
    return (f"names {name}, whose package is not installed here, got {name!r}. Run `pip install {package}`, "
            f"or remove it from report_to.{offline}")


def missing(report_to) -> list[str]:
    """Trackers named in ``report_to`` that transformers cannot start here (their package is missing)."""
    from transformers.integrations import get_available_reporting_integrations

    available = set(get_available_reporting_integrations())
    return [n for n in named(report_to) if n not in available]


def tracker_callbacks(args) -> list:
    """Callbacks to add for the trackers ``args.report_to`` names; may take a name out of ``args.report_to``.

    Today only swanlab >= 0.8: "swanlab" leaves ``args.report_to`` and swanlab's own ``SwanLabCallback``
    (which starts its run itself) is returned. Call before the Trainer is built: it reads report_to then.
    """
    report_to = args.report_to if isinstance(args.report_to, list) else [args.report_to]
    version = installed_version("swanlab")
    if "swanlab" not in report_to or version is None or Version(version) < SWANLAB_OWN_CALLBACK:
        return []
    from swanlab.integration.transformers import SwanLabCallback

    args.report_to = [n for n in report_to if n != "swanlab"]
    return [SwanLabCallback()]


__all__ = ["Tracker", "TRACKERS", "SWANLAB_OWN_CALLBACK", "installed_version", "named", "missing_message",
           "missing", "tracker_callbacks"]
