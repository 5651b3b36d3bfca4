"""LIMA's selection rules as named predicates: each returns the reason it rejects, or None, so
the data card can count how many records every rule dropped."""

from __future__ import annotations

import re

# "I", "my", "me": LIMA drops answers written in the first person. Not "I/O", and not the Roman
# numeral in "Type I error" or "Part I".
_FIRST_PERSON = re.compile(
    r"(?<![\w`/])(?<!Type )(?<!type )(?<!Part )(?<!part )(?<!Phase )(?<!Class )(?<!Stage )"
    r"(I|I'm|I've|I'd|I'll|[Mm]y|[Mm]e|[Mm]ine|[Mm]yself)(?![\w`/])"
)
_OTHER_ANSWERS = re.compile(
    r"\b(other answers?|another answer|answers? (?:above|below)|(?:previous|accepted|top|above) answer|"
    r"as (?:\w+ ){0,2}(?:mentioned|said|noted|pointed out) (?:above|earlier|before|by)|"
    r"(?:the )?comments? (?:above|below))\b",
    re.IGNORECASE,
)
# A title that points elsewhere ("this code", "the following", "see above") needs its body.
_DEICTIC = re.compile(
    r"\b(this|these|that code|the following|(?:code|error|output|example|image|picture) (?:below|above)|"
    r"see (?:below|above)|attached|here is|here's)\b",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)


def prose(markdown: str) -> str:
    """Markdown without code, so `I` in `for I in ...` is not mistaken for the first person."""
    return _FENCE.sub(" ", markdown)


def title_not_self_contained(title: str) -> str | None:
    words = title.split()
    if len(words) < 3:
        return "title too short to stand alone"
    if _DEICTIC.search(title):
        return "title refers to its body"
    return None


def answer_score_too_low(score: int, minimum: int) -> str | None:
    return f"answer score below {minimum}" if score < minimum else None


def answer_length_out_of_range(text: str, low: int, high: int | None) -> str | None:
    if len(text) < low:
        return f"answer shorter than {low} characters"
    if high is not None and len(text) > high:
        return f"answer longer than {high} characters"
    return None


def written_in_first_person(text: str) -> str | None:
    return "answer in the first person" if _FIRST_PERSON.search(prose(text)) else None


def refers_to_other_answers(text: str) -> str | None:
    return "answer refers to other answers" if _OTHER_ANSWERS.search(prose(text)) else None
