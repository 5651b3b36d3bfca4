"""A counted budget of malformed records: each is reported with file:line and skipped, until
there are too many to trust the input."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from lima_recipes.errors import DataFormatError

log = logging.getLogger(__name__)


class BadRecordBudget:
    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0
        self.examples: list[str] = []

    def bad(self, where: str, reason: str) -> None:
        self.count += 1
        message = f"{where}: {reason}"
        if len(self.examples) < 20:
            self.examples.append(message)
        if self.count > self.limit:
            raise DataFormatError(
                f"{message}; {self.count} malformed records exceed curate.error_budget={self.limit} "
                "(fix the input or raise the budget)"
            )
        log.warning("skipped %s", message)


def json_objects(lines: Iterable[bytes], path: Path, budget: BadRecordBudget | None, what: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) of every JSON-object line; a malformed one goes to the budget
    (None: skipped silently, for a pass over lines an earlier pass already reported)."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
            if budget is not None:
                budget.bad(f"{path}:{lineno}", f"malformed {what} record ({err})")
            continue
        yield lineno, record
