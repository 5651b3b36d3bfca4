"""Section 3: tokenizing the 1,000-conversation LIMA-like mix cold, then from the cache; target:
the cached load at least 10x faster."""

from __future__ import annotations

import time
from pathlib import Path

from lima_recipes.bench.measure import spread


def bench_data_prep(workdir: Path, repeats: int = 3, scale: float = 1.0) -> dict:
    from lima_recipes.bench.lima_mix import write_mix
    from lima_recipes.config import compose
    from lima_recipes.data.dataset import load_or_tokenize
    from lima_recipes.data.sources import train_source
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.build import load_tokenizer

    def config(cache: Path):
        return compose(["data=jsonl", f"data.path={data}", f"data.cache_dir={cache}"])

    cfg = compose([])
    tokenizer = load_tokenizer(cfg.model)
    template = build_template(cfg.template)
    template.install(tokenizer)
    data = write_mix(workdir / "lima_mix.jsonl", tokenizer, scale=scale, seed=0)
    cold, cached, examples = [], [], 0
    for k in range(repeats + 1):  # the first round warms up and is not counted
        cfg = config(workdir / f"cache{k}")
        start = time.perf_counter()
        tokenized, hit = load_or_tokenize(train_source(cfg.data), tokenizer, template, cfg.data)
        middle = time.perf_counter()
        again, hit_again = load_or_tokenize(train_source(cfg.data), tokenizer, template, cfg.data)
        end = time.perf_counter()
        assert not hit and hit_again and len(again) == len(tokenized)
        examples = len(tokenized)
        if k:
            cold.append(middle - start)
            cached.append(end - middle)
    speedup = spread([c / h for c, h in zip(cold, cached)])
    return {"examples": examples, "cold_seconds": spread(cold), "cached_seconds": spread(cached),
            "cold_examples_per_s": spread([examples / c for c in cold]), "cached_speedup": speedup,
            "target": {"name": "cached load >= 10x faster than cold", "value": speedup["median"], "met": speedup["median"] >= 10}}
