"""Entry-point plumbing: user errors become one red line and exit code 2, never a traceback."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable

from lima_recipes.errors import LimaError


def fail(message: str, code: int = 2) -> None:
    color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    prefix = "\033[1;31merror:\033[0m " if color else "error: "
    print(prefix + message, file=sys.stderr)
    raise SystemExit(code)


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


def quiet_library_noise() -> None:
    """Keep the console to what a user acts on: Lightning logs once (through Hydra's handler,
    which also writes train.log), without adverts or notes about its own defaults."""
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lightning_log = logging.getLogger(name)
        for handler in list(lightning_log.handlers):
            lightning_log.removeHandler(handler)
        lightning_log.propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropMessages("litlogger", "LitLogger"))
    logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").setLevel(logging.WARNING)
    # One INFO line per judge request (and per retry) would bury the results table; failures
    # still surface as one JudgeError line.
    for name in ("httpx", "httpx2", "openai", "matplotlib"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Hydra writes .hydra/ and train.log into the run directory before the CSV logger starts.
    warnings.filterwarnings("ignore", message=r".*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")


def user_errors_are_one_line(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LimaError as err:
            fail(str(err))

    return wrapper


def precheck_overrides(argv: list[str], config_name: str = "train") -> None:
    """Compose once with the command-line overrides, so a misspelt key fails with a suggestion
    instead of Hydra's traceback hint. Hydra's own flags and hydra.* overrides are left to Hydra."""
    from lima_recipes.config import compose

    overrides = [a for a in argv if not a.startswith("-") and "=" in a and not a.lstrip("+~").startswith("hydra")]
    if any(a in ("-m", "--multirun") for a in argv):
        # sweep values (a,b,c) are checked per job by Hydra itself
        overrides = [a for a in overrides if "," not in a.split("=", 1)[1]]
    user_errors_are_one_line(compose)(overrides, config_name)
