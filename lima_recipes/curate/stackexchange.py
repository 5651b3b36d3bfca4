"""Stack Exchange dump -> LIMA candidates, per site, in constant memory.

The dump has one `<row .../>` per line in `<site>/Posts.xml`. Each row is parsed on its own
(lxml), so a malformed row is reported with file:line and skipped instead of ending the parse,
as a syntax error would end iterparse. Two streaming passes per site:

1. questions: keep the `candidates_per_group` highest-scoring ones whose title stands alone
   (a bounded heap, so memory does not grow with the dump);
2. answers to those questions: the top-scoring one per question, then HTML -> Markdown and
   LIMA's answer rules on it (a question whose top answer fails is dropped, as in LIMA).

The prompt is the title or the question body, chosen at random (seeded), as in LIMA.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from lima_recipes.curate import rules
from lima_recipes.curate.budget import BadRecordBudget
from lima_recipes.curate.candidates import Candidate
from lima_recipes.curate.markdown import html_to_markdown
from lima_recipes.curate.progress import track_bytes
from lima_recipes.errors import DataFormatError


@dataclass
class SiteStats:
    questions: int = 0
    answers: int = 0
    dropped: Counter = field(default_factory=Counter)


def site_name(folder: Path) -> str:
    """`math.stackexchange.com` -> `math`, `mathoverflow.net` -> `mathoverflow`."""
    name = folder.name
    for suffix in (".stackexchange.com", ".com", ".net"):
        name = name.removesuffix(suffix)
    return name


def is_meta_site(folder: Path) -> bool:
    """Meta sites discuss the site itself, not the topic; LIMA's sources are the main sites."""
    parts = folder.name.split(".")
    return "meta" in parts


def iter_rows(path: Path, budget: BadRecordBudget | None) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a Posts.xml; malformed ones go to the budget (None: skipped silently, for a
    second pass over rows the first pass already reported)."""
    with path.open("rb") as handle:
        for lineno, line in enumerate(track_bytes(handle, path, f"stackexchange {path.parent.name}"), start=1):
            text = line.strip()
            if not text.startswith(b"<row"):
                continue
            try:
                element = etree.fromstring(text)
            except etree.XMLSyntaxError as err:
                if budget is not None:
                    budget.bad(f"{path}:{lineno}", f"malformed XML row ({err.msg})")
                continue
            yield lineno, dict(element.attrib)


def _int(attrs: dict[str, str], key: str) -> int:
    try:
        return int(attrs.get(key, "0"))
    except ValueError:
        return 0


def site_candidates(folder: Path, cfg, rng: random.Random, budget: BadRecordBudget, stats: SiteStats) -> list[Candidate]:
    posts = folder / "Posts.xml"
    if not posts.is_file():
        raise DataFormatError(f"{posts}: no Posts.xml in this site folder (expected the Stack Exchange dump layout)")
    site = site_name(folder)

    # (score, -id, line, question): the line number makes every key unique, so a duplicated Id
    # never falls through to comparing the dicts.
    heap: list[tuple[int, int, int, dict]] = []
    rows = 0
    for lineno, row in iter_rows(posts, budget):
        rows += 1
        if row.get("PostTypeId") != "1":
            continue
        stats.questions += 1
        title = row.get("Title", "")
        reason = rules.title_not_self_contained(title) if cfg.filters else None
        if reason:
            stats.dropped[reason] += 1
            continue
        item = (_int(row, "Score"), -_int(row, "Id"), lineno, {"id": row.get("Id"), "title": title, "body": row.get("Body", ""), "line": lineno})
        if len(heap) < cfg.candidates_per_group:
            heapq.heappush(heap, item)
        else:
            stats.dropped["below the site's top questions"] += 1
            heapq.heappushpop(heap, item)
    if rows == 0 and posts.stat().st_size > 0:
        raise DataFormatError(f"{posts}: no <row .../> lines found (the dump format has one post per line)")
    questions = {q["id"]: (score, q) for score, _neg, _line, q in heap}

    # LIMA takes each question's top answer and then filters it: a question whose top answer
    # fails a rule is dropped, not answered by its runner-up. Only the raw HTML of the current
    # top answer is held, and only the final ones are converted to Markdown.
    top: dict[str, tuple[int, str]] = {}
    for _lineno, row in iter_rows(posts, None):
        if row.get("PostTypeId") != "2" or row.get("ParentId") not in questions:
            continue
        stats.answers += 1
        score, parent = _int(row, "Score"), row["ParentId"]
        if parent not in top or score > top[parent][0]:
            top[parent] = (score, row.get("Body", ""))
    best: dict[str, tuple[int, str]] = {}
    for parent, (score, html) in top.items():
        text = html_to_markdown(html)
        reason = cfg.filters and (
            rules.answer_score_too_low(score, cfg.min_score)
            or rules.answer_length_out_of_range(text, cfg.min_response_chars, cfg.max_response_chars)
            or rules.written_in_first_person(text)
            or rules.refers_to_other_answers(text)
        )
        if reason:
            stats.dropped[reason] += 1
        else:
            best[parent] = (score, text)

    out = []
    for qid in sorted(best, key=lambda q: (-questions[q][0], int(q))):
        score, question = questions[qid]
        body = html_to_markdown(question["body"])
        use_title = rng.random() < 0.5 or not body
        prompt = question["title"] if use_title else body
        out.append(Candidate("stackexchange", (prompt, best[qid][1]), float(score), site, f"{posts}:{question['line']}"))
    if len(questions) > len(top):
        stats.dropped["question without answers"] += len(questions) - len(top)
    return out
