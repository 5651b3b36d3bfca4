"""Section 4: from the command to the first optimizer step of the tiny model, phase by phase;
target: at most 10 s beyond the imports."""

from __future__ import annotations

import tempfile
import time

from lima_recipes.bench.measure import run_child, spread


def bench_startup(repeats: int = 2, warmup: bool = False) -> dict:
    runs = []
    # make bench runs this after four other sections have warmed the file cache; alone, pass warmup=True
    for k in range(repeats + 1 if warmup else repeats):  # a first run warms the file cache and is not counted
        with tempfile.TemporaryDirectory() as tmp:
            phases = run_child("lima_recipes.bench.startup_child", {"launched": time.time(), "workdir": tmp})
        if k or not warmup:
            runs.append(phases)
    names = list(runs[0])
    result = {"phases": {name: spread([r[name] for r in runs]) for name in names}}
    beyond = [sum(v for n, v in r.items() if n != "imports") for r in runs]
    result["beyond_imports"] = spread(beyond)
    result["total"] = spread([sum(r.values()) for r in runs])
    median = result["beyond_imports"]["median"]
    result["target"] = {"name": "seconds beyond imports to the first optimizer step <= 10", "value": median, "met": median <= 10}
    return result
