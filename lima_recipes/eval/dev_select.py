"""LIMA's checkpoint selection: generate on the dev prompts with every kept epoch (5 to 10),
compare, and promote the winner to export/, recording why.

With a judge, the epochs play a round robin: every pair is judged on every prompt in both
orders, and an epoch scores 1 per win and 0.5 per tie. Without one, the automatic metrics decide:
most responses that end at the end-of-turn token, then the least repetition. Either way a tie
goes to the earlier epoch (less fitted to 1,000 examples, and what LIMA's range starts from).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from itertools import combinations
from pathlib import Path

from lima_recipes.errors import ConfigError
from lima_recipes.eval.generate import generate, load_for_generation, resolve_export, write_generations
from lima_recipes.eval.generations import load_generations
from lima_recipes.eval.metrics import automatic_metrics
from lima_recipes.eval.prompts import load_prompts
from lima_recipes.io import write_atomically


def kept_checkpoints(run_dir: Path, epochs: list[int]) -> dict[int, Path]:
    from lima_recipes.train.callbacks import EpochCheckpoint

    found = {e: EpochCheckpoint.epoch_path(run_dir / "checkpoints", e) for e in epochs}
    found = {e: p for e, p in found.items() if p.exists()}
    if len(found) < 2:
        raise ConfigError(f"eval=dev_select: {run_dir}/checkpoints holds {len(found)} of the epochs {list(epochs)}; "
                          f"selection needs two or more (train with trainer.checkpoint_epochs covering eval.epochs)")
    return found


def generate_per_epoch(run_dir: Path, checkpoints: dict[int, Path], cfg) -> dict[int, Path]:
    """Generations per epoch, reusing a file already written for the same prompts (resume). Each
    kept epoch is a complete HF directory, loaded as it is."""
    prompts = load_prompts(cfg.prompts)
    ids = [p.id for p in prompts]
    out_dir = run_dir / "generations" / "dev_select"
    paths = {e: out_dir / f"{cfg.prompts.name}-epoch={e:02d}.jsonl" for e in checkpoints}
    for epoch in [e for e, p in paths.items() if not (p.exists() and list(load_generations(p, "dev_select")) == ids)]:
        model, tokenizer, eos = load_for_generation(checkpoints[epoch], cfg.generation)
        generations = generate(prompts, model, tokenizer, eos, cfg.generation, 1, cfg.eval.batch_size, cfg.eval.seed,
                               model_name=f"{run_dir.name}@epoch={epoch:02d}")
        write_generations(generations, paths[epoch])
        metrics = automatic_metrics([asdict(g) for g in generations])
        write_atomically(paths[epoch].with_suffix(".metrics.json"), json.dumps(metrics, indent=2))
        del model
    return paths


def rank_by_judge(paths: dict[int, Path], judge_run) -> tuple[dict[int, float], list[dict]]:
    from lima_recipes.eval.evaluate import compare

    generations = {e: load_generations(p, "dev_select") for e, p in paths.items()}
    scores = {e: 0.0 for e in paths}
    matches = []
    for a, b in combinations(sorted(paths), 2):
        ids = list(generations[a])
        records = compare(judge_run, generations[a], generations[b], ids)
        outcomes = [r["outcome"] for r in records]
        scores[a] += outcomes.count("win") + 0.5 * outcomes.count("tie")
        scores[b] += outcomes.count("loss") + 0.5 * outcomes.count("tie")
        matches.append({"epochs": [a, b], **{k: outcomes.count(k) for k in ("win", "tie", "loss", "invalid")}})
    return scores, matches


def rank_by_metrics(paths: dict[int, Path]) -> dict[int, tuple]:
    metrics = {e: json.loads(p.with_suffix(".metrics.json").read_text()) for e, p in paths.items()}
    return {e: (m["stopped_at_eot"], -m["repetition_rate_mean"]) for e, m in metrics.items()}


def promote(run_dir: Path, checkpoint: Path, record: dict) -> Path:
    """Make the winning epoch's directory the export; the copy is built beside export/ and swapped
    in, so an interruption leaves one complete export."""
    from lima_recipes.train.hf_checkpoint import replace_dir
    from lima_recipes.train.run import update_metadata

    export = resolve_export(run_dir)
    staging = export.with_name(".export.new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(checkpoint, staging)
    update_metadata(staging, {"epoch": record["winner"], "selected_by": record["reason"]})
    replace_dir(staging, export)
    return export


def dev_select(run_dir: str | Path, cfg, judge_run=None) -> dict:
    run_dir = Path(run_dir)
    resolve_export(run_dir)  # fail before generating when the run has no export
    checkpoints = kept_checkpoints(run_dir, list(cfg.eval.epochs))
    paths = generate_per_epoch(run_dir, checkpoints, cfg)
    metrics = {e: json.loads(p.with_suffix(".metrics.json").read_text()) for e, p in paths.items()}
    record: dict = {"eval": "dev_select", "run": str(run_dir), "prompts": cfg.prompts.name,
                    "epochs": sorted(paths), "metrics": {str(e): m for e, m in metrics.items()}}
    if judge_run is not None:
        scores, matches = rank_by_judge(paths, judge_run)
        winner = max(sorted(scores), key=lambda e: scores[e])  # max keeps the first (earliest) of equals
        total = sum(m["win"] + m["tie"] + m["loss"] for m in matches if winner in m["epochs"])
        record.update(method="judge round robin", scores={str(e): s for e, s in scores.items()}, matches=matches,
                      judge={"model": judge_run.judge.model, "prompt_version": judge_run.prompt.version})
        reason = (f"epoch {winner} scored {scores[winner]:g} of {total} in a round robin of epochs "
                  f"{sorted(paths)} judged by {judge_run.judge.model} on {cfg.prompts.name} (1 per win, 0.5 per tie)")
    else:
        keys = rank_by_metrics(paths)
        winner = max(sorted(keys), key=lambda e: keys[e])
        m = metrics[winner]
        record.update(method="automatic metrics")
        reason = (f"no judge, so the automatic metrics decided: with epoch {winner}, {m['stopped_at_eot']:.0%} of responses "
                  f"ended at the end-of-turn token and {m['repetition_rate_mean']:.1%} of 4-grams repeated (highest "
                  f"end-of-turn share, then least repetition, among epochs {sorted(paths)} on {cfg.prompts.name})")
    record.update(winner=winner, reason=reason, checkpoint=str(checkpoints[winner]))
    promote(run_dir, checkpoints[winner], record)
    output = run_dir / "eval" / "dev_select.json"
    dev_select_chart(record, output.with_suffix(".png"))
    write_atomically(output.with_suffix(".md"), dev_select_markdown(record) + f"\n![per epoch]({output.with_suffix('.png').name})\n")
    write_atomically(output, json.dumps(record, indent=2))
    record["output"] = str(output)
    return record


def dev_select_markdown(record: dict) -> str:
    lines = ["# Checkpoint selection (dev_select)", "", f"Winner: **epoch {record['winner']}**, promoted to `export/`.", "",
             f"Why: {record['reason']}.", "",
             "| epoch | score | ended at EOT | repetition | mean tokens | markdown | refusals |", "|---|---|---|---|---|---|---|"]
    for e in record["epochs"]:
        m = record["metrics"][str(e)]
        score = record.get("scores", {}).get(str(e))
        lines.append(f"| {e}{' (winner)' if e == record['winner'] else ''} | {'-' if score is None else f'{score:g}'} | "
                     f"{m['stopped_at_eot']:.0%} | {m['repetition_rate_mean']:.1%} | {m['response_tokens_mean']:.0f} | "
                     f"{m['markdown_share']:.0%} | {m['refusal_share']:.0%} |")
    return "\n".join(lines) + "\n"


def dev_select_chart(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = record["epochs"]
    if "scores" in record:
        values, label = [record["scores"][str(e)] for e in epochs], "round-robin score"
    else:
        values, label = [100 * record["metrics"][str(e)]["stopped_at_eot"] for e in epochs], "% ended at end-of-turn"
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.bar(range(len(epochs)), values, tick_label=[str(e) for e in epochs], color=["#2b8a3e" if e == record["winner"] else "#adb5bd" for e in epochs])
    ax.set(xlabel="epoch", ylabel=label, title=f"dev_select: epoch {record['winner']} promoted")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
