"""The data card beside a curated dataset: JSON for machines, Markdown for people, and a picture
of the length distribution per source."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from lima_recipes.stats import length_summary


def length_stats(rows: list[dict]) -> dict[str, dict]:
    """Characters and tokens (the tiny tokenizer, so the card is the same on any machine) of the
    prompt and the response, per source."""
    from transformers import AutoTokenizer

    from lima_recipes.config.resolvers import asset_path

    tokenizer = AutoTokenizer.from_pretrained(asset_path("tiny_tokenizer"))
    by_source: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        turns = row.get("conversations") or [m["content"] for m in row["messages"] if m["role"] != "system"]
        prompt, response = "\n".join(turns[0::2]), "\n".join(turns[1::2])
        stats = by_source[row["source"]]
        stats["prompt_chars"].append(len(prompt))
        stats["response_chars"].append(len(response))
        stats["prompt_tokens"].append(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
        stats["response_tokens"].append(len(tokenizer(response, add_special_tokens=False)["input_ids"]))
    return {source: {k: length_summary(v) | {"values": v} for k, v in stats.items()} for source, stats in sorted(by_source.items())}


def card_markdown(card: dict) -> str:
    lines = [f"# Data card: {card['name']}", "", f"{card['examples']} examples in `{card['output']}` (seed {card['seed']}).", "",
             "| source | requested | delivered | candidates | note |", "|---|---:|---:|---:|---|"]
    for name, s in card["sources"].items():
        lines.append(f"| {name} | {s['requested']} | {s['delivered']} | {s['candidates']} | {s['skipped'] or ''} |")
    lines += ["", "## Records dropped, by rule", "", "| source | rule | dropped |", "|---|---|---:|"]
    for name, s in card["sources"].items():
        for rule, count in sorted(s["dropped"].items()):
            lines.append(f"| {name} | {rule} | {count} |")
    malformed = card["malformed_records"]
    lines += ["", f"Malformed records skipped: {malformed['count']} (budget {malformed['budget']}).", ""]
    lines += ["## Lengths (tokens of the tiny tokenizer)", "", "| source | prompt p50 | prompt max | response p50 | response max |", "|---|---:|---:|---:|---:|"]
    for source, stats in card["lengths"].items():
        p, r = stats["prompt_tokens"], stats["response_tokens"]
        lines.append(f"| {source} | {p['p50']:.0f} | {p['max']} | {r['p50']:.0f} | {r['max']} |")
    lines += ["", "![lengths](data_card_lengths.png)", "", "## Examples", ""]
    for source, examples in card["examples_per_source"].items():
        for ex in examples:
            lines += [f"### {source}", "", "**Prompt:** " + ex["prompt"].replace("\n", " ")[:300], "",
                      "**Response:** " + ex["response"].replace("\n", " ")[:400] + " …", ""]
    return "\n".join(lines) + "\n"


def histogram_png(card: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for source, stats in card["lengths"].items():
        ax.hist(stats["response_tokens"]["values"], bins=20, alpha=0.6, label=source)
    ax.set_xlabel("response tokens")
    ax.set_ylabel("examples")
    ax.set_title(f"{card['name']}: response lengths by source")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def write_card(card: dict, output: Path) -> None:
    from lima_recipes.io import write_atomically

    folder = Path(output).parent
    write_atomically(folder / "data_card.json", json.dumps(card, indent=2, ensure_ascii=False))
    write_atomically(folder / "data_card.md", card_markdown(card))
    histogram_png(card, folder / "data_card_lengths.png")
