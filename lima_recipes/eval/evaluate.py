"""The judged evaluations: pairwise preference (both orders), absolute rating, Likert helpfulness.

Each returns a summary (the numbers a report shows, JSON-ready) and one record per judged item
with the judge's raw replies, so every number can be traced back to what the judge said.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from lima_recipes.eval.generations import load_generations, paired_ids
from lima_recipes.eval.judge_prompts import JudgePrompt
from lima_recipes.eval.judges import ReplyCache
from lima_recipes.eval.judging import RequestCount, judge_all
from lima_recipes.eval.stats import mean_with_interval, pair_outcome, shares

PAIRWISE = ("win", "tie", "loss")
ABSOLUTE = ("Fail", "Pass", "Excellent")


@dataclass
class JudgeRun:
    """What every judged evaluation needs besides its inputs."""

    judge: object
    prompt: JudgePrompt
    cache: ReplyCache
    invalid_retries: int
    bootstrap_samples: int
    seed: int
    count: RequestCount

    def ask(self, items: list[dict[str, str]]):
        return judge_all(self.judge, self.prompt, items, self.cache, self.invalid_retries, self.judge.settings, self.count)


def compare(run: JudgeRun, ours: dict[str, list[dict]], baseline: dict[str, list[dict]], ids: list[str]) -> list[dict]:
    """One record per id: ours as answer A, then as answer B (the first sample of each)."""
    firsts = [(ours[i][0], baseline[i][0]) for i in ids]
    items = [{"question": o["prompt"], "answer_a": o["response"], "answer_b": b["response"]} for o, b in firsts]
    items += [{"question": o["prompt"], "answer_a": b["response"], "answer_b": o["response"]} for o, b in firsts]
    verdicts = run.ask(items)
    n = len(ids)
    return [{"id": i, "prompt": o["prompt"], "ours": o["response"], "baseline": b["response"],
             "verdict_ours_as_a": verdicts[k].label, "verdict_ours_as_b": verdicts[n + k].label,
             "outcome": pair_outcome(verdicts[k].label, verdicts[n + k].label),
             "replies_ours_as_a": verdicts[k].replies, "replies_ours_as_b": verdicts[n + k].replies}
            for k, (i, (o, b)) in enumerate(zip(ids, firsts))]


def pairwise(run: JudgeRun, ours_path: str, baseline_path: str, intersect: bool) -> tuple[dict, list[dict]]:
    ours, baseline = load_generations(ours_path, "ours"), load_generations(baseline_path, "baseline")
    ids = paired_ids(ours, baseline, intersect, ours_path, baseline_path)
    records = compare(run, ours, baseline, ids)
    outcomes = [r["outcome"] for r in records]
    summary = {
        "prompts": len(ids), "invalid": outcomes.count("invalid"),
        "left_out": sorted(set(ours) ^ set(baseline)) if intersect else [],
        "results": shares(outcomes, PAIRWISE, run.bootstrap_samples, run.seed),
    }
    return summary, records


def _every_response(path: str) -> list[dict]:
    return [g for samples in load_generations(path, "ours").values() for g in samples]


def absolute(run: JudgeRun, ours_path: str) -> tuple[dict, list[dict]]:
    responses = _every_response(ours_path)
    verdicts = run.ask([{"question": g["prompt"], "answer": g["response"]} for g in responses])
    outcomes = [v.label or "invalid" for v in verdicts]
    summary = {"responses": len(responses), "invalid": outcomes.count("invalid"),
               "results": shares(outcomes, ABSOLUTE, run.bootstrap_samples, run.seed)}
    records = [{"id": g["id"], "sample": g.get("sample", 0), "prompt": g["prompt"], "response": g["response"],
                "rating": v.label, "replies": v.replies} for g, v in zip(responses, verdicts)]
    return summary, records


def likert(run: JudgeRun, ours_path: str) -> tuple[dict, list[dict]]:
    """Helpfulness 1-6; each prompt's score is the mean over its samples, and the interval is
    over prompts (samples of one prompt are not independent evidence)."""
    responses = _every_response(ours_path)
    verdicts = run.ask([{"question": g["prompt"], "answer": g["response"]} for g in responses])
    per_prompt: dict[str, list[int]] = defaultdict(list)
    for g, v in zip(responses, verdicts):
        if v.label is not None:
            per_prompt[str(g["id"])].append(int(v.label))
    prompt_means = [sum(s) / len(s) for s in per_prompt.values()]
    scores = [int(v.label) for v in verdicts if v.label is not None]
    summary = {"responses": len(responses), "prompts": len({str(g["id"]) for g in responses}),
               "invalid": sum(v.label is None for v in verdicts),
               "results": {"helpfulness": mean_with_interval(prompt_means),
                           "distribution": {str(k): scores.count(k) for k in range(1, 7)}}}
    records = [{"id": g["id"], "sample": g.get("sample", 0), "prompt": g["prompt"], "response": g["response"],
                "score": None if v.label is None else int(v.label), "replies": v.replies}
               for g, v in zip(responses, verdicts)]
    return summary, records


def run_dir_of(generations_path: str | Path) -> Path:
    """The run a generations file belongs to (<run>/generations/x.jsonl), else its folder."""
    path = Path(generations_path).resolve()
    return path.parent.parent if path.parent.name == "generations" else path.parent


def file_label(generations_path: str | Path) -> str:
    """A short name for a generations file in output names: <experiment>_<run id>_<prompts>."""
    path = Path(generations_path).resolve()
    if path.parent.name == "generations":
        return f"{path.parent.parent.parent.name}_{path.parent.parent.name}_{path.stem}"
    return path.stem
