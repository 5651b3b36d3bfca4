"""wikiHow article dump -> LIMA candidates: the title as the prompt ("How to ..."), the article as
the response, with "This article..." openings rewritten, links and images removed and
boilerplate sections dropped.

Input: JSONL, one article per line: {"title", "category", "text"}; `text` may be Markdown (with
`## Section` headings) or HTML. Articles are grouped by category, so the mixture can draw a
category first and an article second, which balances categories as LIMA did. Articles are
streamed; only the kept candidates are held.
"""

from __future__ import annotations

import heapq
import random
import re
from collections import Counter
from pathlib import Path

from lima_recipes.curate.budget import BadRecordBudget, json_objects
from lima_recipes.curate.candidates import Candidate
from lima_recipes.curate.markdown import html_to_markdown
from lima_recipes.curate.progress import track_bytes
from lima_recipes.errors import DataFormatError

_HTML = re.compile(r"<(p|h\d|ul|ol|li|div|br|img|a)\b", re.IGNORECASE)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_BARE_URL = re.compile(r"https?://\S+")
_THIS_ARTICLE = re.compile(r"^(This|this) (article|wikiHow)\b")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def clean_article(text: str, drop_sections: list[str]) -> str:
    """Markdown body without links, images or boilerplate sections; 'This article' -> 'The
    following answer' (LIMA's rewrite, so the response reads as an answer, not a web page)."""
    if _HTML.search(text):
        text = html_to_markdown(text)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _BARE_URL.sub("", text)
    dropped = {s.lower() for s in drop_sections}
    kept, skipping = [], False
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            skipping = heading.group(1).strip().lower() in dropped
        if not skipping:
            kept.append(line)
    body = "\n".join(kept).strip()
    body = re.sub(r"\n{3,}", "\n\n", body)
    return _THIS_ARTICLE.sub("The following answer", body)


def top_category(category) -> str:
    """LIMA balances wikiHow's top-level categories: a path ("Home and Garden » Cleaning") or a
    list (["Home and Garden", "Cleaning"]) is reduced to its first element."""
    if isinstance(category, list):
        category = category[0] if category else ""
    category = re.split(r"\s*(?:»|>|/|\|)\s*", str(category or "").strip())[0]
    return category or "uncategorised"


def how_to_prompt(title: str) -> str:
    title = title.strip().rstrip("?.")
    if not title.lower().startswith("how to "):
        title = "How to " + title[0].lower() + title[1:]
    return title + "?"


def wikihow_groups(path: str | Path, src, rng: random.Random, budget: BadRecordBudget,
                   dropped: Counter) -> dict[str, list[Candidate]]:
    path = Path(path)
    groups: dict[str, list[tuple[float, int, Candidate]]] = {}
    with path.open("rb") as handle:
        for lineno, record in json_objects(track_bytes(handle, path, "wikihow"), path, budget, "wikiHow"):
            where = f"{path}:{lineno}"
            title, text = record.get("title"), record.get("text")
            if not isinstance(title, str) or not isinstance(text, str):
                budget.bad(where, "wikiHow record needs string 'title' and 'text' fields")
                continue
            category = top_category(record.get("category"))
            body = clean_article(text, list(src.drop_sections))
            if len(body) < src.min_response_chars or not title.strip():
                dropped["article too short after cleaning"] += 1
                continue
            if src.max_response_chars is not None and len(body) > src.max_response_chars:
                dropped[f"article longer than {src.max_response_chars} characters"] += 1
                continue
            # A seeded random priority, of which each category keeps the largest K: a uniform
            # sample per category in bounded memory (a reservoir), drawn in that random order.
            candidate = Candidate("wikihow", (how_to_prompt(title), body), rng.random(), str(category), where)
            heap = groups.setdefault(str(category), [])
            if len(heap) < src.candidates_per_group:
                heapq.heappush(heap, (candidate.priority, lineno, candidate))
            else:
                dropped["beyond the category's sample"] += 1
                heapq.heappushpop(heap, (candidate.priority, lineno, candidate))
    if not groups and not dropped and path.stat().st_size > 0:
        raise DataFormatError(f"{path}: no wikiHow articles read (expected JSONL of title, category, text)")
    return {cat: [c for _p, _l, c in sorted(heap, reverse=True)] for cat, heap in sorted(groups.items())}
