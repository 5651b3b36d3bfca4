"""Summaries of length distributions, shared by run statistics, data cards and previews."""

from __future__ import annotations

import numpy as np


def length_summary(lengths) -> dict[str, float]:
    """min / median / p90 / max / mean / total of a list of lengths ({} when empty)."""
    lengths = np.asarray(lengths)
    if len(lengths) == 0:
        return {}
    return {
        "min": int(lengths.min()), "p50": float(np.percentile(lengths, 50)), "p90": float(np.percentile(lengths, 90)),
        "max": int(lengths.max()), "mean": float(lengths.mean()), "total": int(lengths.sum()),
    }
