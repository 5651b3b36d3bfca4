"""User-facing error types: each carries one line that names the key or file:line and the fix."""

from __future__ import annotations


class LimaError(Exception):
    """A user error: reported as one line, never as a traceback."""


class ConfigError(LimaError):
    """The composed config is invalid; the message lists every problem found at once."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
        else:
            super().__init__(f"{len(self.problems)} config problems:\n  " + "\n  ".join(self.problems))


class DataFormatError(LimaError):
    """A record in a data file cannot be used; the message starts with `path:line:`."""


class WeightsNotFoundError(LimaError):
    """Model weights or a gated dataset are not reachable; the message says how to provide them."""


class TrainingDivergedError(LimaError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint is kept."""


class JudgeError(LimaError):
    """The judge cannot be reached or refused the request; finished verdicts stay cached."""


def one_line(err: BaseException) -> str:
    """An error as the one line a log or a marker file shows: every problem of a ConfigError,
    the message of another user error, the type and first line of anything else."""
    if isinstance(err, ConfigError):
        return "; ".join(err.problems)
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else ""
    return first if isinstance(err, LimaError) else f"{type(err).__name__}: {first}".rstrip(": ")
