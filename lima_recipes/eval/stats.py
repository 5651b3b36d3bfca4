"""The numbers LIMA reports: win / tie / loss shares with bootstrap 95% intervals, shares of
absolute ratings, and mean Likert scores with a 95% interval.

Resampling n categorical outcomes with replacement gives category counts distributed exactly
Multinomial(n, observed shares), so the bootstrap draws those counts directly: the same
distribution as resampling prompt indices, in O(samples x categories).
"""

from __future__ import annotations

import math
import statistics

import numpy as np

OURS_AS_A = {"A": "win", "B": "loss", "C": "tie"}
OURS_AS_B = {"A": "loss", "B": "win", "C": "tie"}


def pair_outcome(ours_first: str | None, ours_second: str | None) -> str:
    """Ours as answer A, then as answer B; a verdict that flips with the order is a tie."""
    if ours_first is None or ours_second is None:
        return "invalid"
    first, second = OURS_AS_A[ours_first], OURS_AS_B[ours_second]
    return first if first == second else "tie"


def shares(outcomes: list[str], categories: tuple[str, ...], samples: int = 10000, seed: int = 1234) -> dict:
    """Per category: count, percent of valid outcomes and a percentile-bootstrap 95% interval.
    Outcomes outside `categories` (invalid ones) are left out of the percentages."""
    valid = [o for o in outcomes if o in categories]
    n = len(valid)
    counts = np.array([valid.count(c) for c in categories])
    result = {}
    if n == 0:
        return {c: {"count": 0, "percent": None, "ci95": [None, None]} for c in categories}
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=samples) / n * 100
    for k, category in enumerate(categories):
        low, high = np.percentile(draws[:, k], [2.5, 97.5])
        result[category] = {"count": int(counts[k]), "percent": 100 * counts[k] / n, "ci95": [float(low), float(high)]}
    return result


def mean_with_interval(values: list[float]) -> dict:
    """Mean and the normal-approximation 95% interval, mean +- 1.96 * sd / sqrt(n)."""
    n = len(values)
    if n == 0:
        return {"mean": None, "ci95": [None, None], "n": 0}
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(n) if n > 1 else 0.0
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}
