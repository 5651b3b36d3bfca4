"""Reddit (Pushshift-style NDJSON, plain or zstd-compressed) -> LIMA candidates: the top posts
of chosen subreddits as prompts (r/WritingPrompts: the prompt with its `[WP]` tag removed) and
the top-voted top-level comment as the response.

Input: a folder with submission files and comment files (names containing `submission` and
`comment`; `.jsonl`, `.ndjson`, `.json` or `.zst`). Two streaming passes, like Stack Exchange:
a bounded heap of the best submissions per subreddit, then the best comment for each of them.
"""

from __future__ import annotations

import heapq
import io
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from lima_recipes.curate.budget import BadRecordBudget, json_objects
from lima_recipes.curate.candidates import Candidate
from lima_recipes.curate.progress import track_bytes
from lima_recipes.curate.rules import answer_length_out_of_range
from lima_recipes.errors import DataFormatError

_TAG = re.compile(r"^\s*\[(WP|SP|EU|CW|TT|IP|PI|OT|RF|MP|FF|PM)\]\s*", re.IGNORECASE)
_GONE = {"[deleted]", "[removed]", ""}
_BOTS = {"AutoModerator"}


def open_lines(path: Path) -> Iterator[bytes]:
    """Lines of an NDJSON file; Pushshift .zst dumps use long windows, hence the large limit."""
    with path.open("rb") as raw:
        if path.suffix == ".zst":
            import zstandard

            reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(raw)
            yield from io.BufferedReader(reader)
        else:
            yield from raw


def iter_records(path: Path, budget: BadRecordBudget | None) -> Iterator[tuple[int, dict]]:
    lines = track_bytes(open_lines(path), path, "reddit", compressed=path.suffix == ".zst")
    return json_objects(lines, path, budget, "Reddit")


def _files(folder: Path, kind: str) -> list[Path]:
    """Submission (`RS_2023-01.zst`, `*submissions*`) or comment (`RC_...`, `*comments*`) files."""
    prefix, word = ("rs_", "submission") if kind == "submission" else ("rc_", "comment")
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.name.lower().startswith(prefix) or word in p.name.lower()))


def _score(record: dict) -> int:
    try:
        return int(record.get("score") or 0)
    except (TypeError, ValueError):
        return 0


def prompt_text(submission: dict) -> str:
    title = _TAG.sub("", str(submission.get("title", ""))).strip()
    body = str(submission.get("selftext") or "").strip()
    return title if body in _GONE else f"{title}\n\n{body}"


def reddit_groups(folder: str | Path, src, rng: random.Random, budget: BadRecordBudget,
                  dropped: Counter) -> dict[str, list[Candidate]]:
    folder = Path(folder)
    subreddits = {s.lower() for s in src.subreddits}
    heaps: dict[str, list] = {}
    seen: set[str] = set()
    files = _files(folder, "submission")
    if not files or not _files(folder, "comment"):
        raise DataFormatError(f"{folder}: needs submission files (RS_*, *submissions*) and comment files (RC_*, *comments*)")
    for file_index, path in enumerate(files):
        for lineno, post in iter_records(path, budget):
            sub = str(post.get("subreddit", "")).lower()
            if sub not in subreddits:
                continue
            if post.get("over_18") or str(post.get("title", "")).strip() in _GONE:
                dropped["submission removed, empty or NSFW"] += 1
                continue
            post_id = str(post.get("id"))
            if post_id in seen:
                dropped["repeated submission id"] += 1
                continue  # overlapping dump files
            seen.add(post_id)
            # (score, id, file, line, ...): unique keys, so heapq never compares the dicts
            item = (_score(post), post_id, file_index, lineno, {"id": post_id, "prompt": prompt_text(post),
                                                                "sub": post.get("subreddit"), "where": f"{path}:{lineno}"})
            heap = heaps.setdefault(sub, [])
            if len(heap) < src.candidates_per_group:
                heapq.heappush(heap, item)
            else:
                dropped["below the subreddit's top posts"] += 1
                heapq.heappushpop(heap, item)
    posts = {f"t3_{item[-1]['id']}": (item[0], item[-1]) for heap in heaps.values() for item in heap}

    best: dict[str, tuple[int, str]] = {}
    for path in _files(folder, "comment"):
        for _lineno, comment in iter_records(path, budget):
            parent = str(comment.get("parent_id", ""))
            if parent not in posts:
                continue  # not a top-level reply to a kept post
            body = str(comment.get("body") or "").strip()
            score = _score(comment)
            if body in _GONE or comment.get("author") in _BOTS:
                dropped["comment deleted or by a bot"] += 1
                continue
            if score < src.min_score:
                dropped[f"comment score below {src.min_score}"] += 1
                continue
            reason = answer_length_out_of_range(body, src.min_response_chars, src.max_response_chars)
            if reason:
                dropped[reason.replace("answer", "comment")] += 1
                continue
            if parent not in best or score > best[parent][0]:
                best[parent] = (score, body)

    groups: dict[str, list[Candidate]] = {}
    for parent in sorted(best, key=lambda p: (-posts[p][0], p)):
        score, post = posts[parent]
        groups.setdefault(str(post["sub"]), []).append(
            Candidate("reddit", (post["prompt"], best[parent][1]), float(score), str(post["sub"]), post["where"]))
    if len(posts) > len(best):
        dropped["no comment passed the rules"] += len(posts) - len(best)
    return groups
