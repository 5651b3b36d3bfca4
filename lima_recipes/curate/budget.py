"""A counted budget of malformed records: each is reported with file:line and skipped, until
there are too many to trust the input."""

from __future__ import annotations

import logging

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
