"""Curation throughput (MB/s of Stack Exchange XML) and peak memory at 1x and 4x input.

Each measurement runs in a fresh process, so its peak resident memory (VmHWM) is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from lima_recipes.bench.measure import spread
from lima_recipes.bench.synthetic import write_site

_CHILD = r"""
import json, random, sys, time
from types import SimpleNamespace
from pathlib import Path
from lima_recipes.curate.budget import BadRecordBudget
from lima_recipes.curate.stackexchange import SiteStats, site_candidates
# The candidate cap is already reached at 1x, so any memory growth at 4x would come from the
# streaming itself, which is what the ratio is meant to show.
cfg = SimpleNamespace(candidates_per_group=1000, min_score=10, min_response_chars=1200, max_response_chars=4096, filters=True)
start = time.perf_counter()
out = site_candidates(Path(sys.argv[1]), cfg, random.Random(0), BadRecordBudget(100), SiteStats())
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so a child would report the
# parent's peak (the benchmark process has torch imported).
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_rss_mb": hwm_kb / 1024, "candidates": len(out)}))
"""


def _run(folder: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_curation(megabytes: float = 8.0, scale: int = 4, repeats: int = 2) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in (("1x", megabytes), (f"{scale}x", megabytes * scale)):
            folder = Path(tmp) / label / "bench.stackexchange.com"
            nbytes = write_site(folder, size)
            _run(folder)  # warm-up: imports and file cache
            runs = [_run(folder) for _ in range(repeats)]
            mb = nbytes / 1024 / 1024
            results[label] = {
                "input_mb": round(mb, 2),
                "mb_per_s": spread([mb / r["seconds"] for r in runs]),
                "peak_rss_mb": spread([r["peak_rss_mb"] for r in runs]),
                "candidates": runs[0]["candidates"],
            }
    big = results[f"{scale}x"]
    results["peak_memory_ratio"] = big["peak_rss_mb"]["median"] / results["1x"]["peak_rss_mb"]["median"]
    results["input_ratio"] = big["input_mb"] / results["1x"]["input_mb"]
    return results
