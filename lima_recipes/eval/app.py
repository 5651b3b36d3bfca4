"""`make eval`: check the inputs, build the judge, run one evaluation, write and log its report."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from lima_recipes.errors import ConfigError
from lima_recipes.eval import evaluate
from lima_recipes.eval.judge_prompts import load_judge_prompt
from lima_recipes.eval.judges import ReplyCache, build_judge
from lima_recipes.eval.judging import RequestCount

JUDGED = ("pairwise", "absolute", "likert")


def check(cfg) -> None:
    """Every missing input at once, before a judge or a model is loaded."""
    kind = cfg.eval.kind
    problems = []
    if kind not in (*JUDGED, "dev_select"):
        problems.append(f"eval={cfg.eval.name} (kind {kind}) is not an evaluation `make eval` runs: use pairwise, absolute, likert or dev_select")
    if kind in JUDGED and not cfg.ours:
        problems.append(f"eval={kind} needs ours=<generations.jsonl> (from `make generate`)")
    if kind == "pairwise" and not cfg.baseline:
        problems.append("eval=pairwise needs baseline=<generations.jsonl> to compare against")
    if kind in JUDGED and cfg.judge.kind == "none":
        problems.append(f"eval={kind} needs a judge: judge=openai (any OpenAI-compatible server) or judge=hf")
    if kind == "dev_select" and not cfg.run:
        problems.append("eval=dev_select needs run=<training run directory> (or run it as `make train eval=dev_select`)")
    if problems:
        raise ConfigError(problems)


def judge_run(cfg, judge) -> evaluate.JudgeRun:
    return evaluate.JudgeRun(judge=judge, prompt=load_judge_prompt(cfg.eval.prompt, cfg.eval.name),
                             cache=ReplyCache(cfg.judge.cache_dir), invalid_retries=cfg.eval.invalid_retries,
                             bootstrap_samples=cfg.eval.bootstrap_samples, seed=cfg.eval.seed, count=RequestCount())


def run_judged(cfg, ours: str, baseline: str | None = None, output: str | None = None) -> tuple[dict, Path]:
    """One judged evaluation of the generations in `ours` (against `baseline` for pairwise)."""
    from lima_recipes.eval.report import print_table, write_results
    from lima_recipes.eval.wandb_log import judged_tables, log_tables

    # Inputs are read before the judge is built, so a bad line never waits on an API key check.
    evaluate.load_generations(ours, "ours")
    if baseline:
        evaluate.load_generations(baseline, "baseline")
    run = judge_run(cfg, build_judge(cfg.judge))
    kind = cfg.eval.kind
    if kind == "pairwise":
        summary, records = evaluate.pairwise(run, ours, baseline, cfg.eval.intersect)
    elif kind == "absolute":
        summary, records = evaluate.absolute(run, ours)
    else:
        summary, records = evaluate.likert(run, ours)
    summary = {"eval": kind, "ours": str(ours), "baseline": str(baseline) if kind == "pairwise" else None,
               "judge": {"kind": cfg.judge.kind, "model": run.judge.model, "base_url": cfg.judge.base_url},
               "prompt_version": run.prompt.version, "requests": vars(run.count),
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **summary}
    run_dir = evaluate.run_dir_of(ours)
    name = f"{cfg.eval.name}-{evaluate.file_label(ours)}" + (f"-vs-{evaluate.file_label(baseline)}" if kind == "pairwise" else "")
    output = Path(output) if output else run_dir / "eval" / f"{name}.json"
    write_results(summary, records, output)
    tables, scalars = judged_tables(summary, records)
    log_tables(run_dir, kind, tables, scalars, {"judge": summary["judge"], "prompt_version": summary["prompt_version"],
                                                "ours": summary["ours"], "baseline": summary["baseline"]}, cfg.eval.wandb)
    print_table(summary)  # last, so the table is what the terminal ends on
    return summary, output


def run_dev_select(cfg, run_dir: str | Path) -> dict:
    from lima_recipes.eval.dev_select import dev_select
    from lima_recipes.eval.wandb_log import log_tables

    judge = build_judge(cfg.judge)
    record = dev_select(run_dir, cfg, judge_run(cfg, judge) if judge is not None else None)
    per_epoch = [{"epoch": e, "winner": e == record["winner"], "score": record.get("scores", {}).get(str(e)),
                  **record["metrics"][str(e)]} for e in record["epochs"]]
    generations = []
    for e in record["epochs"]:
        path = Path(run_dir) / "generations" / "dev_select" / f"{cfg.prompts.name}-epoch={e:02d}.jsonl"
        generations += [{"epoch": e, "id": g["id"], "prompt": g["prompt"], "response": g["response"]}
                        for samples in evaluate.load_generations(path, "dev_select").values() for g in samples]
    log_tables(Path(run_dir), "dev_select", {"epochs": per_epoch, "generations": generations},
               {"winner_epoch": record["winner"]}, {"method": record["method"], "reason": record["reason"]}, cfg.eval.wandb)
    return record


def run_eval(cfg) -> dict:
    check(cfg)
    if cfg.eval.kind == "dev_select":
        record = run_dev_select(cfg, cfg.run)
        print(f"epoch {record['winner']} promoted to {Path(cfg.run) / 'export'}: {record['reason']}")
        print(f"wrote {record['output']}")
        return record
    summary, output = run_judged(cfg, cfg.ours, cfg.baseline, cfg.eval.output)
    print(f"wrote {output} (+ .md, .png, .judgements.jsonl)")
    return summary


def evaluate_after_training(cfg, run_dir: str | Path) -> dict:
    """The evaluation a training job ends with; returns the scores a sweep report tabulates
    (flat names: helpfulness, Pass_percent, stopped_at_eot, ...) and where the outputs are."""
    from lima_recipes.eval.generate import generate_to_file

    kind = cfg.eval.kind
    if kind == "dev_select":
        record = run_dev_select(cfg, run_dir)
        winner = record["metrics"][str(record["winner"])]
        return {"scores": {"selected_epoch": record["winner"], **winner}, "outputs": [record["output"]], "reason": record["reason"]}
    # LIMA's ablations: sample responses to the test prompts with the trained model, then judge them.
    path, metrics = generate_to_file(run_dir, cfg.prompts, cfg.generation, cfg.eval.num_samples, cfg.eval.batch_size, cfg.eval.seed)
    scores, outputs = dict(metrics), [str(path)]
    if kind in ("likert", "absolute"):
        summary, output = run_judged(cfg, str(path))
        scores.update(judged_scores(summary))
        outputs.append(str(output))
    return {"scores": scores, "outputs": outputs}


def judged_scores(summary: dict) -> dict:
    """A judged summary's headline numbers as flat scores."""
    results, scores = summary["results"], {"invalid_verdicts": summary["invalid"]}
    if summary["eval"] == "likert":
        h = results["helpfulness"]
        scores.update(helpfulness=h["mean"], helpfulness_ci_low=h["ci95"][0], helpfulness_ci_high=h["ci95"][1])
    else:
        scores.update({f"{name}_percent": r["percent"] for name, r in results.items()})
    return scores
