"""Hand-written examples: passed through as they are, only validated (any supported format)."""

from __future__ import annotations

from lima_recipes.curate.candidates import Candidate
from lima_recipes.data.records import ASSISTANT, SYSTEM, USER, convert_records, read_jsonl


def handwritten_candidates(path: str) -> list[Candidate]:
    pairs = ((f"{path}:{lineno}", obj) for lineno, obj in read_jsonl(path))
    out = []
    for rank, conv in enumerate(convert_records(pairs)):
        turns = tuple(m.content for m in conv.messages if m.role in (USER, ASSISTANT))
        system = next((m.content for m in conv.messages if m.role == SYSTEM), None)
        out.append(Candidate("handwritten", turns, -float(rank), "handwritten", conv.origin, system))
    return out
