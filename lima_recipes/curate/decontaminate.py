"""Drop training examples that share a word n-gram with any dev or test prompt, so evaluation
never scores a model on text it was trained on."""

from __future__ import annotations

from lima_recipes.curate.dedup import words
from lima_recipes.data.records import read_jsonl


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def eval_ngrams(paths: list[str], n: int) -> set[tuple[str, ...]]:
    """N-grams of every prompt in the eval files (`prompt` records, or the user turns of conversations)."""
    grams: set[tuple[str, ...]] = set()
    for path in paths:
        for _lineno, record in read_jsonl(path):
            texts = [record["prompt"]] if "prompt" in record else record.get("conversations", [])[::2]
            for text in texts:
                grams |= ngrams(str(text), n)
    return grams


def overlaps(text: str, grams: set[tuple[str, ...]], n: int) -> bool:
    return bool(grams) and not grams.isdisjoint(ngrams(text, n))
