"""Entry-point plumbing: user errors become one red line and exit code 2, never a traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from lima_recipes.errors import LimaError


def fail(message: str, code: int = 2) -> None:
    color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    prefix = "\033[1;31merror:\033[0m " if color else "error: "
    print(prefix + message, file=sys.stderr)
    raise SystemExit(code)


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
