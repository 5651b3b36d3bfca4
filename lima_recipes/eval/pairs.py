"""`make pairs`: preference pairs for DPO from an SFT export and our own pairwise judge.

For every prompt the export samples `num_samples` responses with LIMA's decoding; the judge
compares every two different responses of a prompt in both orders (the pairwise evaluation's
prompt, cache and retries), and a pair is kept only when both orders prefer the same response:
verdicts that flip with the order (position bias), ties and unparseable replies are dropped and
counted. The output is the JSONL `stage=dpo` reads, each record carrying its provenance (model,
judge, judge prompt version, seed, samples, verdicts), with a summary beside it that includes the
chosen/rejected length ratio: a judge with a length bias teaches DPO "longer" (see README).
"""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from lima_recipes.eval.stats import pair_outcome

KEPT = {"win": "first", "loss": "second"}
"""pair_outcome with the first sample as "ours": win keeps it as chosen, loss the second one."""


def candidate_pairs(samples: list[dict]) -> tuple[list[tuple[dict, dict]], int]:
    """Every two responses of one prompt (sample order), and how many were left out as identical."""
    pairs, identical = [], 0
    for first, second in itertools.combinations(samples, 2):
        if first["response"].strip() == second["response"].strip():
            identical += 1
        else:
            pairs.append((first, second))
    return pairs, identical


def judge_pairs(run, candidates: list[tuple[dict, dict]]) -> list[str]:
    """The outcome of each candidate for its first response: win, loss, tie or invalid."""
    items = [{"question": a["prompt"], "answer_a": a["response"], "answer_b": b["response"]} for a, b in candidates]
    items += [{"question": a["prompt"], "answer_a": b["response"], "answer_b": a["response"]} for a, b in candidates]
    verdicts = run.ask(items)
    n = len(candidates)
    return [(pair_outcome(verdicts[k].label, verdicts[n + k].label), verdicts[k].label, verdicts[n + k].label) for k in range(n)]


def preference_records(prompts, generations, outcomes, candidates, max_per_prompt: int | None, provenance: dict) -> list[dict]:
    by_id = {p.id: p for p in prompts}
    records, per_prompt = [], {}
    for (first, second), (outcome, as_a, as_b) in zip(candidates, outcomes):
        if outcome not in KEPT:
            continue
        pid = first["id"]
        if max_per_prompt is not None and per_prompt.get(pid, 0) >= max_per_prompt:
            continue
        per_prompt[pid] = per_prompt.get(pid, 0) + 1
        chosen, rejected = (first, second) if KEPT[outcome] == "first" else (second, first)
        messages = list(by_id[pid].messages)
        records.append({
            "id": f"{pid}-{chosen['sample']}-{rejected['sample']}",
            "prompt": messages[0]["content"] if len(messages) == 1 else messages,
            "chosen": chosen["response"], "rejected": rejected["response"], "source": "judge",
            "meta": {**provenance, "prompt_id": pid, "samples": {"chosen": chosen["sample"], "rejected": rejected["sample"]},
                     "verdicts": {"first_as_a": as_a, "first_as_b": as_b, "first": first["sample"]}},
        })
    return records


def length_ratio(records: list[dict]) -> float | None:
    """Mean chosen length over mean rejected length, in characters (1.0: no length preference)."""
    if not records:
        return None
    return statistics.mean(len(r["chosen"]) for r in records) / statistics.mean(len(r["rejected"]) for r in records)


def build_pairs(cfg) -> tuple[Path, dict]:
    from lima_recipes.errors import ConfigError
    from lima_recipes.eval.app import judge_run
    from lima_recipes.eval.generate import generate, load_for_generation, resolve_export
    from lima_recipes.eval.judges import build_judge
    from lima_recipes.eval.prompts import load_prompts
    from lima_recipes.io import write_atomically, write_jsonl

    if cfg.num_samples < 2:
        raise ConfigError(f"num_samples={cfg.num_samples}: a pair needs at least 2 responses per prompt")
    if cfg.judge.kind == "none":
        raise ConfigError("make pairs needs a judge: judge=openai (any OpenAI-compatible server) or judge=hf")
    if cfg.max_pairs_per_prompt is not None and cfg.max_pairs_per_prompt < 1:
        raise ConfigError(f"max_pairs_per_prompt={cfg.max_pairs_per_prompt} must be >= 1 or null")
    prompts = load_prompts(cfg.prompts)
    export = resolve_export(cfg.run)
    output = Path(cfg.output) if cfg.output else (export.parent if export.name == "export" else export) / "pairs" / f"{cfg.prompts.name}.jsonl"
    judge = build_judge(cfg.judge)  # before generating: a missing key fails in a second, not after the samples

    model, tokenizer, eos = load_for_generation(export, cfg.generation)
    generations = [asdict(g) for g in generate(prompts, model, tokenizer, eos, cfg.generation, cfg.num_samples, cfg.batch_size,
                                               cfg.seed, model_name=str(export))]
    del model
    samples_path = output.with_suffix(".generations.jsonl")
    write_jsonl(samples_path, generations)

    by_prompt: dict[str, list[dict]] = {}
    for g in generations:
        by_prompt.setdefault(g["id"], []).append(g)
    candidates, identical = [], 0
    for samples in by_prompt.values():
        found, same = candidate_pairs(samples)
        candidates += found
        identical += same

    run = judge_run(cfg, judge)
    outcomes = judge_pairs(run, candidates)
    provenance = {"model": str(export), "judge": {"kind": cfg.judge.kind, "model": judge.model, "base_url": cfg.judge.base_url},
                  "judge_prompt": run.prompt.version, "generation_seed": cfg.seed, "decoding": generations[0]["decoding"] if generations else {}}
    records = preference_records(prompts, generations, outcomes, candidates, cfg.max_pairs_per_prompt, provenance)
    write_jsonl(output, records)
    counts = [o for o, _, _ in outcomes]
    summary = {
        "output": str(output), "generations": str(samples_path), "prompts": len(prompts),
        "responses": len(generations), "compared": len(candidates), "identical_left_out": identical,
        "kept": len(records), "agreed": counts.count("win") + counts.count("loss"), "ties": counts.count("tie"),
        "invalid": counts.count("invalid"),
        "order_dependent": sum(1 for o, a, b in outcomes if o == "tie" and not (a == "C" and b == "C")),
        "prompts_with_a_pair": len({r["meta"]["prompt_id"] for r in records}),
        "chosen_to_rejected_length": length_ratio(records),
        "requests": vars(run.count), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **provenance,
    }
    write_atomically(output.with_suffix(".summary.json"), json.dumps(summary, indent=2))
    return output, summary
