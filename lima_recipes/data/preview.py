"""`make preview`: see exactly what the model is trained on, token by token.

Trained tokens (assistant turns and their end-of-turn token) are green, masked tokens grey;
alternating shades mark token boundaries. Then the length distribution and what the max length cuts.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lima_recipes.data.dataset import TokenizedSet

TRAINED = ("bold green", "green")
MASKED = ("grey50", "grey62")


def colored_tokens(input_ids, labels, tokenizer, max_chars: int) -> Text:
    text = Text()
    for k, (token, label) in enumerate(zip(input_ids, labels)):
        piece = tokenizer.decode([int(token)])
        style = (TRAINED if label != -100 else MASKED)[k % 2]
        text.append(piece, style=style)
        if len(text) >= max_chars:
            text.append(" …", style="italic")
            break
    return text


def histogram(lengths: np.ndarray, max_length: int, bins: int = 8, width: int = 40) -> Table:
    table = Table(title="tokens per example", show_edge=False)
    table.add_column("length", justify="right")
    table.add_column("examples", justify="right")
    table.add_column("")
    edges = np.linspace(0, max(int(lengths.max()), 1), bins + 1)
    counts, _ = np.histogram(lengths, bins=edges)
    top = max(int(counts.max()), 1)
    for lo, hi, count in zip(edges[:-1], edges[1:], counts):
        table.add_row(f"{int(lo)}-{int(hi)}", str(int(count)), "█" * int(round(width * count / top)))
    return table


def render_preview(tokenized: TokenizedSet, tokenizer, max_length: int, num_examples: int, max_chars: int,
                   console: Console | None = None) -> None:
    console = console or Console()
    picks = _diverse_picks(tokenized, num_examples)
    for i in picks:
        trained = int((tokenized.labels[i] != -100).sum())
        console.rule(f"example {i} · source {tokenized.sources[i]} · {len(tokenized.input_ids[i])} tokens, {trained} trained")
        console.print(colored_tokens(tokenized.input_ids[i], tokenized.labels[i], tokenizer, max_chars))
    console.rule("legend")
    console.print(Text("trained (assistant turns + end-of-turn)", style=TRAINED[0]), Text("  masked (-100)", style=MASKED[0]))
    lengths = tokenized.lengths
    stats = tokenized.stats
    summary = Table(title=f"{stats.get('source', '')}", show_header=False)
    summary.add_row("examples", str(len(tokenized)))
    summary.add_row("tokens min / median / p90 / max", f"{lengths.min()} / {int(np.median(lengths))} / {int(np.percentile(lengths, 90))} / {lengths.max()}")
    summary.add_row("trained tokens (share of all)", f"{int(tokenized.trained_tokens.sum()):,} ({tokenized.trained_tokens.sum() / lengths.sum():.1%})")
    summary.add_row(f"cut at data.max_length={max_length}", str(stats.get("truncated", 0)))
    for reason, count in stats.get("skipped", {}).items():
        summary.add_row(f"skipped: {reason}", str(count))
    for source, count in sorted(stats.get("per_source", {}).items()):
        summary.add_row(f"source {source}", str(count))
    console.print(summary)
    console.print(histogram(lengths, max_length))


def _diverse_picks(tokenized: TokenizedSet, n: int) -> list[int]:
    """One example per source first (multi-turn ones included), then the rest in order."""
    seen, picks = set(), []
    for i, source in enumerate(tokenized.sources):
        if source not in seen:
            seen.add(source)
            picks.append(i)
    picks += [i for i in range(len(tokenized)) if i not in picks]
    return picks[:n]
