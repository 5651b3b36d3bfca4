"""Section 6: responses per second on the shipped test prompts, batched against one by one, with
greedy decoding so both must give the same responses."""

from __future__ import annotations

import time
from pathlib import Path

from lima_recipes.bench.measure import spread


def export_tiny_model(path: Path) -> Path:
    """The tiny model as `make train` exports it (untrained weights: generation cost is the same)."""
    from lima_recipes.config import compose
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.build import build_model, load_tokenizer
    from lima_recipes.model.export import export_model

    cfg = compose([])
    tokenizer = load_tokenizer(cfg.model)
    template = build_template(cfg.template)
    template.install(tokenizer)
    model = build_model(cfg.model, tokenizer, seed=0)
    return export_model(model, tokenizer, template.end_of_turn(tokenizer), cfg.generation, path)


def bench_generation(workdir: Path, repeats: int = 3, max_new_tokens: int = 64, batch_size: int = 8, max_prompts: int | None = None) -> dict:
    from omegaconf import OmegaConf

    from lima_recipes.config import compose
    from lima_recipes.eval.generate import generate, load_for_generation
    from lima_recipes.eval.prompts import load_prompts

    model, tokenizer, eos = load_for_generation(export_tiny_model(workdir / "export"))
    overrides = ["prompts=sample"] + ([f"prompts.max_prompts={max_prompts}"] if max_prompts else [])
    prompts_cfg = compose(overrides, config_name="generate").prompts
    prompts = load_prompts(prompts_cfg)
    greedy = OmegaConf.create({"do_sample": False, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": 1.2,
                               "max_new_tokens": max_new_tokens})

    def run(size: int) -> tuple[float, list[str]]:
        start = time.perf_counter()
        out = generate(prompts, model, tokenizer, eos, greedy, 1, size, seed=0)
        return time.perf_counter() - start, [g.response for g in out]

    run(batch_size)  # warm-up
    batched = [run(batch_size) for _ in range(repeats)]
    single = [run(1) for _ in range(repeats)]
    per_s = lambda runs: spread([len(prompts) / seconds for seconds, _ in runs])  # noqa: E731
    b, s = per_s(batched), per_s(single)
    return {"prompts": len(prompts), "max_new_tokens": max_new_tokens, "batch_size": batch_size,
            "batched_responses_per_s": b, "one_by_one_responses_per_s": s, "speedup": b["median"] / s["median"],
            "same_outputs": batched[0][1] == single[0][1]}
