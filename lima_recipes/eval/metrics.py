"""Automatic metrics beside every generations file: they need no judge, so they are always there.

Length (tokens, characters), the share of responses that stopped at the end-of-turn token, the
repetition rate (share of word 4-grams that repeat one seen earlier in the same response), the
share with Markdown structure (lists, headings, code) and the share of refusals.
"""

from __future__ import annotations

import re
import statistics

_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)
_HEADING = re.compile(r"^#{1,6}\s+\S", re.MULTILINE)
_CODE = re.compile(r"```")
_REFUSAL = re.compile(
    r"\b(I can(?:no|')t (?:help|assist|provide|do that)|I(?:'m| am) (?:sorry|unable)[^.]{0,40}\b(?:can(?:no|')t|unable|not able)|"
    r"I won't (?:help|provide|assist)|I must decline|I can(?:no|')t comply|as an AI)\b",
    re.IGNORECASE,
)


def repetition_rate(text: str, n: int = 4) -> float:
    words = text.lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    seen, repeated = set(), 0
    for gram in grams:
        repeated += gram in seen
        seen.add(gram)
    return repeated / len(grams)


def has_markdown(text: str) -> bool:
    return bool(_LIST.search(text) or _HEADING.search(text) or _CODE.search(text))


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text[:400]))


def automatic_metrics(generations: list[dict]) -> dict:
    if not generations:
        return {"responses": 0}
    responses = [g["response"] for g in generations]
    tokens = [g["response_tokens"] for g in generations]
    share = lambda flags: sum(flags) / len(flags)  # noqa: E731
    return {
        "responses": len(responses),
        "response_tokens_mean": statistics.fmean(tokens),
        "response_tokens_median": statistics.median(tokens),
        "response_chars_mean": statistics.fmean(len(r) for r in responses),
        "stopped_at_eot": share([g["stopped_at_eot"] for g in generations]),
        "repetition_rate_mean": statistics.fmean(repetition_rate(r) for r in responses),
        "markdown_share": share([has_markdown(r) for r in responses]),
        "refusal_share": share([is_refusal(r) for r in responses]),
    }
