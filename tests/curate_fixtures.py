"""Stack Exchange dump fixtures written for this project (no real posts): sites with questions
and answers that each trip exactly one LIMA rule, plus HTML with code, lists, links and images.

Long answers are pseudo-word prose generated from a seed, so every answer is distinct text and
only the duplicates planted on purpose are near-duplicates.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from lima_recipes.bench.synthetic import SYLLABLES, dump_row



def prose(seed: int, chars: int) -> str:
    rng = random.Random(seed)
    out = []
    while sum(len(s) + 1 for s in out) < chars:
        words = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))) for _ in range(rng.randint(6, 14))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def answer_html(seed: int, chars: int, extra: str = "") -> str:
    """An answer body with a code block, a list, a link and an image around generated prose."""
    text = prose(seed, chars - 200)
    half = len(text) // 2
    return (
        f"<p>{text[:half]} {extra} See <a href='https://example.invalid/{seed}'>the manual</a>.</p>"
        f"<pre><code>value_{seed} = compute({seed})\nprint(value_{seed})\n</code></pre>"
        f"<ul><li>first point {seed}</li><li>second point {seed}</li></ul>"
        f"<p>{text[half:]}<img src='diagram{seed}.png' alt='diagram'/></p>"
    )


def write_site(folder: Path, questions: list[dict], malformed_line: bool = False) -> None:
    """questions: dicts with title, score, body and answers [(score, html)]."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ['<?xml version="1.0" encoding="utf-8"?>\n', "<posts>\n"]
    site_seed = sum(map(ord, folder.name)) * 1000  # question bodies differ between sites
    next_id = 1
    for q in questions:
        qid = next_id
        next_id += 1
        lines.append(dump_row(Id=qid, PostTypeId=1, Score=q["score"], Title=q["title"], Body=q.get("body", f"<p>{prose(site_seed + qid * 7, 200)}</p>"), Tags="<fixture>"))
        for score, html in q["answers"]:
            lines.append(dump_row(Id=next_id, PostTypeId=2, ParentId=qid, Score=score, Body=html))
            next_id += 1
        if malformed_line and qid == 1:
            lines.append('  <row Id="999" PostTypeId="2" Body="unterminated\n')
    lines.append("</posts>\n")
    (folder / "Posts.xml").write_text("".join(lines), encoding="utf-8")


def good_question(seed: int, score: int) -> dict:
    """The runner-up answer comes first in the file (dumps are in Id order, not score order)."""
    return {"title": f"Why does the kalo process number {seed} converge so slowly?", "score": score,
            "answers": [(11, answer_html(seed + 1000, 1800)), (15 + seed % 7, answer_html(seed, 2000))]}


def write_stackexchange_dump(root: Path, big_site_questions: int = 30) -> Path:
    """math (STEM, large), physics (STEM, small), cooking and travel (other). math also carries one
    answer per rule that LIMA drops, and physics repeats one math answer almost verbatim."""
    math = [good_question(i, 100 - i) for i in range(big_site_questions)]
    math += [
        {"title": "How do I fix this?", "score": 500, "answers": [(50, answer_html(7001, 2000))]},
        {"title": "Help", "score": 400, "answers": [(50, answer_html(7002, 2000))]},
        {"title": "Which rules govern the lodal integral of tusa functions?", "score": 90,
         "answers": [(9, answer_html(7003, 2000))]},                                   # score below 10
        {"title": "Is there a closed form for the renmi sequence at scale?", "score": 89,
         "answers": [(40, answer_html(7004, 900))]},                                   # shorter than 1200
        {"title": "What bounds the growth of vorne partitions in practice?", "score": 88,
         "answers": [(40, answer_html(7005, 5000))]},                                  # longer than 4096
        {"title": "Why do quidal matrices always have real eigenvalues here and there?", "score": 87,
         "answers": [(40, answer_html(7006, 2000, extra="In my experience I always start from the trace."))]},
        {"title": "When does the zenpo series stop being absolutely convergent?", "score": 86,
         "answers": [(40, answer_html(7007, 2000, extra="As mentioned above in the other answers, it diverges."))]},
    ]
    write_site(root / "math.stackexchange.com", math, malformed_line=True)
    duplicate = answer_html(3, 2000).replace("first point 3", "first point three")
    write_site(root / "physics.stackexchange.com", [
        good_question(200 + i, 50 - i) for i in range(3)
    ] + [{"title": "Why does the kalo process number 3 converge so slowly in physics?", "score": 60, "answers": [(30, duplicate)]}])
    write_site(root / "cooking.stackexchange.com", [good_question(300 + i, 40 - i) for i in range(6)])
    write_site(root / "travel.stackexchange.com", [good_question(400 + i, 30 - i) for i in range(4)])
    return root


def write_handwritten(path: Path, n: int = 5) -> Path:
    records = [{"conversations": [f"Handwritten question {i}: what is {prose(900 + i, 40)}?", prose(950 + i, 400)], "source": "handwritten"}
               for i in range(n)]
    records.append({"conversations": ["A two-turn chain about sabo?", prose(990, 300), "And then what?", prose(991, 200)]})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_wikihow(path: Path) -> Path:
    """Three categories (one large), Markdown and HTML bodies, boilerplate sections, a link, an
    image, a 'This article' opening, and one malformed line."""
    def article(seed: int, opening: str = "") -> str:
        return (f"{opening}{prose(seed, 600)}\n\n## Steps\n\n1. {prose(seed + 1, 150)} See [the guide](https://example.invalid/g).\n"
                f"2. {prose(seed + 2, 150)} ![photo](https://example.invalid/p.jpg)\n\n## Tips\n\n- {prose(seed + 3, 100)}\n\n"
                f"## Related wikiHows\n\n- How to Something Else\n\n## References\n\n1. https://example.invalid/ref\n")
    lines = []
    for i in range(12):
        lines.append({"title": f"How to Tune a Balo Engine Model {i}", "category": "Cars", "text": article(500 + i)})
    for i in range(3):
        lines.append({"title": f"Grow Dalsa Herbs Number {i}", "category": "Garden", "text": article(600 + i, "This article explains the method. ")})
    lines.append({"title": "How to Bake Quiren Bread", "category": "Food",
                  "text": f"<p>{prose(700, 600)}</p><h2>Steps</h2><ol><li>{prose(701, 150)}</li></ol><h2>Video</h2><p>watch</p>"})
    lines.append({"title": "How to Write Nothing", "category": "Food", "text": "Too short."})
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"title": "truncated\n'
    path.write_text(text)
    return path


def write_reddit(folder: Path, compress: bool = False) -> Path:
    """r/WritingPrompts and r/other submissions with comments: a top story, a weaker one, a deleted
    one, a bot, a low score, a reply to a comment (not top-level)."""
    folder.mkdir(parents=True, exist_ok=True)
    subs, comments = [], []
    for i in range(6):
        subs.append({"id": f"wp{i}", "subreddit": "WritingPrompts", "title": f"[WP] A tolvor wakes up in city {i}", "selftext": "", "score": 1000 - i})
        comments += [  # the weaker comment first: the top one must win on score, not position
            {"id": f"c{i}b", "parent_id": f"t3_wp{i}", "body": prose(850 + i, 900), "score": 20, "author": "writer2"},
            {"id": f"c{i}a", "parent_id": f"t3_wp{i}", "body": prose(800 + i, 900), "score": 500 - i, "author": "writer"},
        ]
    comments += [
        {"id": "d1", "parent_id": "t3_wp0", "body": "[deleted]", "score": 9999, "author": "[deleted]"},
        {"id": "b1", "parent_id": "t3_wp1", "body": prose(870, 900), "score": 9999, "author": "AutoModerator"},
        {"id": "r1", "parent_id": "t1_c0a", "body": prose(871, 900), "score": 9999, "author": "replier"},
        {"id": "l1", "parent_id": "t3_wp5", "body": prose(872, 900), "score": 3, "author": "low"},
    ]
    subs.append({"id": "x1", "subreddit": "pics", "title": "not a prompt", "selftext": "", "score": 99999})
    subs.append({"id": "wpgone", "subreddit": "WritingPrompts", "title": "[removed]", "selftext": "", "score": 5000})
    subs.append(dict(subs[0]))  # the same post twice, as overlapping monthly dumps have it
    for name, records in (("RS_2023-01.jsonl", subs), ("RC_2023-01.jsonl", comments)):
        data = ("".join(json.dumps(r) + "\n" for r in records) + "{broken json\n").encode()
        if compress:
            import zstandard

            (folder / (name + ".zst")).write_bytes(zstandard.ZstdCompressor().compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def write_natural_instructions(folder: Path, tasks: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(tasks):
        task = {"Definition": [f"In this task you rename the {prose(1100 + t, 60)} items."],
                "Positive Examples": [{"input": "a", "output": "b", "explanation": "c"}],
                "Instances": [{"id": f"task{t}-{k}", "input": prose(1200 + t * 10 + k, 120), "output": [prose(1300 + t * 10 + k, 80)]} for k in range(5)]}
        (folder / f"task{t:03d}_fixture.json").write_text(json.dumps(task))
    (folder / "task999_empty.json").write_text(json.dumps({"Definition": [], "Instances": []}))
    (folder / "task998_broken.json").write_text('{"Definition": ["x"],\n "Instances": [')
    return folder
