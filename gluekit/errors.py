"""Error types shared by every gluekit module.

Both collect *all* problems found in one pass and raise once, so a user fixes a
config or a data file in one edit instead of one error per run.
"""
from __future__ import annotations


class GluekitError(ValueError):
    """A problem with user input. ``problems`` holds one line per problem."""

    kind = "input"

    def __init__(self, problems: list[str] | str, source: str | None = None, total: int | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        # how many were found: ``problems`` may list only the first ones, then "... and N more"
        self.total = total if total is not None else len(self.problems)
        head = f"{self.total} {self.kind} problem(s)"
        if source:
            head += f" in {source}"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class ConfigError(GluekitError):
    kind = "config"


class DataError(GluekitError):
    kind = "data"


class TrainingError(GluekitError):
    """A run that cannot start or go on: a resume point that does not exist, an output folder
    holding an earlier run, a NaN loss. The message says what to change and how to continue."""

    kind = "training"


class DiskFullError(TrainingError):
    """A save that ran out of disk space. One line: the folder, the bytes needed and free, and the
    last complete checkpoint (the partial folder is already removed)."""

    def __str__(self) -> str:
        return self.problems[0]


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on request: Ctrl-C (SIGINT), a kernel interrupt in Jupyter, or SIGTERM.

    A KeyboardInterrupt, so ``except Exception`` does not swallow it, as it would not swallow the
    interrupt itself. ``str(e)`` says where training stopped and whether (and how) it can go on;
    ``checkpoint``: the folder saved at the interrupted step (None when nothing was saved then);
    ``resume_from``: the newest complete checkpoint (None: nothing to resume from);
    ``signal_number``: 2 (SIGINT) or 15 (SIGTERM); the command line exits with 128 + it.
    """

    def __init__(self, message: str, signal_number: int = 2, checkpoint=None, resume_from=None):
        super().__init__(message)
        self.signal_number = signal_number
        self.checkpoint = checkpoint
        self.resume_from = resume_from
