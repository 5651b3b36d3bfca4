"""A generated training set shaped like LIMA's: 1,000 conversations whose prompt and response
lengths, in tokens of the tokenizer at hand, follow the per-source averages of the paper's
Table 1, spread log-normally around them and cut at 2,048 tokens (about 750,000 tokens in all).

Batching and padding costs depend on the length mix far more than on the words, so the words are
drawn from the shipped sample data's vocabulary; the same seed writes the same set.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lima_recipes.config.resolvers import asset_path
from lima_recipes.io import write_jsonl

TABLE1 = (
    # source, examples, mean prompt tokens, mean response tokens
    ("stackexchange_stem", 200, 117, 523),
    ("stackexchange_other", 200, 119, 530),
    ("wikihow", 200, 12, 1811),
    ("writingprompts", 150, 34, 274),
    ("natural_instructions", 50, 236, 92),
    ("handwritten", 200, 40, 334),
)


def _vocabulary(tokenizer) -> tuple[list[str], np.ndarray]:
    words: set[str] = set()
    with open(asset_path("sample/train.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            for turn in json.loads(line)["conversations"]:
                words.update(re.findall(r"[A-Za-z]+[.,]?", turn))
    ordered = sorted(words)
    # A word preceded by a space tokenizes alike wherever it stands, so lengths add up exactly.
    counts = np.array([len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) for w in ordered])
    return ordered, counts


def _lengths(rng: np.random.Generator, mean: float, n: int, sigma: float) -> np.ndarray:
    # log-normal with the given mean: mu = ln(mean) - sigma^2 / 2
    return np.maximum(1, np.round(rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, n))).astype(int)


def lima_like_mix(tokenizer, scale: float = 1.0, seed: int = 0, sigma: float = 0.5, max_tokens: int = 2048) -> list[dict]:
    """`scale` shrinks every source alike (0.2 gives 200 conversations with the same mix)."""
    rng = np.random.default_rng(seed)
    words, counts = _vocabulary(tokenizer)

    def text_of(tokens: int) -> str:
        """Words up to `tokens` tokens (never over: the cut at max_tokens must hold)."""
        picked, total = [], 0
        while total < tokens:
            k = int(rng.integers(len(words)))
            if total + counts[k] > tokens and picked:
                break
            picked.append(words[k])
            total += int(counts[k])
        # the first word has no leading space and may take a token more than counted
        while len(picked) > 1 and len(tokenizer(" ".join(picked), add_special_tokens=False)["input_ids"]) > tokens:
            picked.pop()
        return " ".join(picked)

    records = []
    for source, count, prompt_mean, response_mean in TABLE1:
        n = max(1, round(count * scale))
        for p, r in zip(_lengths(rng, prompt_mean, n, sigma), _lengths(rng, response_mean, n, sigma)):
            p = min(int(p), max_tokens // 4)  # a prompt never crowds out the response entirely
            r = max(1, min(int(r), max_tokens - p))
            records.append({"conversations": [text_of(p), text_of(r)], "source": source})
    order = rng.permutation(len(records))
    return [records[i] for i in order]


def write_mix(path: Path, tokenizer, scale: float = 1.0, seed: int = 0) -> Path:
    write_jsonl(path, lima_like_mix(tokenizer, scale, seed))
    return path
