"""Synthetic Stack Exchange dumps of a chosen size, for throughput and memory benchmarks.

Text is generated from a seed (pseudo-words), so the benchmark needs no real dump and every run
writes the same bytes.
"""

from __future__ import annotations

import random
from html import escape
from pathlib import Path

# No syllable with an "m": generated words never spell "me", "my" or "mine", which the
# first-person rule would (rightly) reject.
SYLLABLES = ["ka", "lo", "gu", "ren", "tu", "sa", "vor", "ne", "qui", "dal", "po", "zen", "fi", "ro", "ba", "tel"]


def _text(rng: random.Random, chars: int) -> str:
    words, size = [], 0
    while size < chars:
        word = "".join(rng.choices(SYLLABLES, k=rng.randint(1, 3)))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def dump_row(**attrs) -> str:
    """One Posts.xml line; like the real dumps, newlines inside attributes are written as &#xA;."""
    value = lambda v: escape(str(v), quote=True).replace("\n", "&#xA;")  # noqa: E731
    return "  <row " + " ".join(f'{k}="{value(v)}"' for k, v in attrs.items()) + " />\n"


def write_site(folder: Path, megabytes: float, seed: int = 0) -> int:
    """A single-site dump of about `megabytes` MB; returns its exact size in bytes."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Posts.xml"
    target = int(megabytes * 1024 * 1024)
    post_id, written = 1, 0
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        while written < target:
            qid = post_id
            title = "Why does the " + _text(rng, 30) + " converge?"
            body = f"<p>{_text(rng, 300)}</p>"
            line = dump_row(Id=qid, PostTypeId=1, Score=rng.randint(0, 500), Title=title, Body=body)
            post_id += 1
            for _ in range(3):
                answer = f"<p>{_text(rng, 1200)}</p><pre><code>x = {post_id}</code></pre><ul><li>{_text(rng, 200)}</li></ul><p>{_text(rng, 600)}</p>"
                line += dump_row(Id=post_id, PostTypeId=2, ParentId=qid, Score=rng.randint(0, 60), Body=answer)
                post_id += 1
            out.write(line)
            written += len(line)
        out.write("</posts>\n")
    return path.stat().st_size
