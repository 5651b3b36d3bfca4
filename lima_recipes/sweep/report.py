"""A sweep's results in one place: `report.csv` (one row per job), `report.md` (the variants with
the mean score over seeds and a 95% interval, then every job) and `report.png` (LIMA's plots: the
score against the number of examples, or one bar per variant).

Everything is read from the job folders and the sweep manifest, so the report works offline and
after the fact; W&B, when on, adds each run's state and link.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from lima_recipes.errors import ConfigError
from lima_recipes.io import write_atomically
from lima_recipes.sweep import manifest
from lima_recipes.train.job import FAILED, read_marker

REPLICATE_KEY = "run.seed"
"""Jobs that differ only in this key are replicates of one variant: their scores are averaged."""

SCORES = (("helpfulness", True), ("val/loss", False), ("train/loss", False))
"""Default score, first one present: LIMA's Likert helpfulness, else the dev loss, else the train loss."""

LOWER_IS_BETTER = {"val/loss", "train/loss", "repetition_rate_mean", "refusal_share", "invalid_verdicts"}


@dataclass
class SweepReport:
    sweep_dir: Path
    swept: list[str]
    jobs: list[dict]
    score: str | None
    groups: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    wandb: str = "off"

    @property
    def variant_keys(self) -> list[str]:
        return [k for k in self.swept if k != REPLICATE_KEY]


def t_interval(values: list[float]) -> dict:
    """Mean and Student-t 95% interval over replicates (seeds are few: the normal 1.96 would
    claim far more certainty than 2 or 3 seeds give). One value has no interval."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "ci95": [None, None], "sd": None}
    mean = statistics.fmean(values)
    if n == 1:
        return {"n": 1, "mean": mean, "ci95": [None, None], "sd": None}
    from scipy.stats import t

    sd = statistics.stdev(values)
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "ci95": [mean - half, mean + half], "sd": sd}


def job_status(job: dict, run_dir: Path) -> str:
    """done, skipped (finished by an earlier launch), failed, or unfinished: started by this
    launch and not over (running, or killed before it could say; training may be COMPLETED
    while its evaluation is not)."""
    if job.get("status"):
        return job["status"]
    return "failed" if (run_dir / FAILED).is_file() else "unfinished"


def job_row(job: dict) -> dict:
    run_dir = Path(job["dir"])
    row = {"job": job["num"], "run_id": job["run_id"], "status": job_status(job, run_dir), **job.get("swept", {})}
    stats_path = run_dir / "data_stats.json"
    if stats_path.is_file():
        row["examples"] = json.loads(stats_path.read_text())["train"]["examples"]
    done = read_marker(run_dir) or {}
    for key in ("steps", "train/loss", "val/loss"):
        if key in done:
            row[key] = done[key]
    evals = done.get("evals", {})
    # The evaluation this launch asked for; jobs that differ only in evaluation settings share
    # one trained folder, and its COMPLETED holds each of their evaluations.
    evaluation = evals.get(job["eval_key"]) if job.get("eval_key") else None
    if evaluation is None and not job.get("eval_key") and evals:
        evaluation = max(evals.values(), key=lambda e: e.get("finished", ""))
    if evaluation is not None:
        row.update({k: v for k, v in evaluation.get("scores", {}).items() if isinstance(v, (int, float)) or v is None})
    if row["status"] == "failed":
        failure = read_marker(run_dir, FAILED) or {}
        row["error"] = job.get("error") or failure.get("error", "")
    row["dir"] = str(run_dir)
    return row


def choose_score(rows: list[dict], requested: str | None) -> str | None:
    present = {k for r in rows if r["status"] in ("done", "skipped") for k, v in r.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "job"}
    if requested:
        if rows and requested not in present:
            raise ConfigError(f"score={requested}: no finished job has it; scores of this sweep: {', '.join(sorted(present)) or 'none yet'}")
        return requested
    return next((name for name, _ in SCORES if name in present), None)


def aggregate(rows: list[dict], variant_keys: list[str], score: str | None) -> list[dict]:
    """One group per variant (the swept values other than the seed), in sweep order."""
    groups: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row.get(k) for k in variant_keys)
        group = groups.setdefault(key, {"variant": dict(zip(variant_keys, key)), "scores": [], "jobs": 0, "failed": 0, "unfinished": 0})
        group["jobs"] += 1
        if row["status"] == "failed":
            group["failed"] += 1
        elif row["status"] == "unfinished":
            group["unfinished"] += 1
        elif score is not None and isinstance(row.get(score), (int, float)):
            group["scores"].append(float(row[score]))
    for group in groups.values():
        group.update(t_interval(group["scores"]))
    return list(groups.values())


def find_sweep(sweep: str | None, output_root: str | Path) -> Path:
    """The named sweep directory, or the latest one launched under output_root."""
    if sweep is None:
        found = manifest.latest_sweep(Path(output_root))
        if found is None:
            raise ConfigError(f"no sweep under {output_root}/ (no */{manifest.MANIFEST}/launch.json): run `make ablate "
                              "experiment=...` first, or pass sweep=<sweep directory>")
        return found
    path = Path(sweep)
    if not (path / manifest.MANIFEST / "launch.json").is_file():
        hint = f"; did you mean its parent {path.parent}?" if (path.parent / manifest.MANIFEST).is_dir() else ""
        raise ConfigError(f"sweep={sweep}: not a sweep directory (no {manifest.MANIFEST}/launch.json){hint}")
    return path


def build_report(sweep_dir: str | Path, score: str | None = None, use_wandb: bool | None = None) -> SweepReport:
    sweep_dir = Path(sweep_dir)
    launch = manifest.read_launch(sweep_dir)
    jobs = manifest.read_jobs(sweep_dir)
    rows = [job_row(j) for j in jobs]
    note = "off"
    if use_wandb is not False and rows:
        from lima_recipes.sweep.wandb_runs import merge_wandb

        note = merge_wandb(rows, use_wandb)
    chosen = choose_score(rows, score)
    report = SweepReport(sweep_dir, launch["swept"], rows, chosen, wandb=note)
    report.groups = aggregate(rows, report.variant_keys, chosen)
    report.files = write_report(report)
    return report


# ---------------------------------------------------------------- files


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def columns(report: SweepReport) -> list[str]:
    fixed = ["job", "run_id", "status", *report.swept, "examples", "steps", "train/loss", "val/loss"]
    extra = sorted({k for r in report.jobs for k in r} - set(fixed) - {"error", "dir"})
    return [c for c in fixed if any(c in r for r in report.jobs)] + extra + ["error", "dir"]


def variant_label(variant: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in variant.items()) or "all jobs"


def markdown_table(report: SweepReport) -> str:
    """The variants: jobs, scored replicates, mean score and its 95% interval, failures."""
    lines = ["| variant | jobs | scored | mean | 95% CI | failed |", "|---|---|---|---|---|---|"]
    for g in report.groups:
        ci = "-" if g["ci95"][0] is None else f"[{g['ci95'][0]:.4g}, {g['ci95'][1]:.4g}]"
        lines.append(f"| {variant_label(g['variant'])} | {g['jobs']} | {g['n']} | {_fmt(g['mean'])} | {ci} | {g['failed']} |")
    return "\n".join(lines)


def markdown(report: SweepReport) -> str:
    counts = {s: sum(r["status"] == s for r in report.jobs) for s in ("done", "skipped", "failed", "unfinished")}
    better = "lower is better" if report.score in LOWER_IS_BETTER else "higher is better"
    lines = [f"# Sweep report: {report.sweep_dir.name}", "",
             f"- sweep directory: `{report.sweep_dir}`",
             f"- swept: {', '.join(f'`{k}`' for k in report.swept) or 'nothing'}; replicates: `{REPLICATE_KEY}`",
             f"- jobs: {len(report.jobs)} ({', '.join(f'{n} {s}' for s, n in counts.items() if n)})",
             f"- score: `{report.score}` ({better}); mean over replicates with a Student-t 95% interval",
             f"- W&B: {report.wandb}", ""]
    lines.append(markdown_table(report))
    cols = [c for c in columns(report) if c != "dir"]
    lines += ["", "## Jobs", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in report.jobs:
        lines.append("| " + " | ".join(_fmt(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    if any(r["status"] == "failed" for r in report.jobs):
        lines += ["", "Failed jobs keep their reason in `<job>/FAILED`; re-running the sweep retries them and skips the finished ones."]
    lines += ["", "![report](report.png)"]
    return "\n".join(lines) + "\n"


def write_report(report: SweepReport) -> list[Path]:
    cols = columns(report)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(report.jobs)
    from lima_recipes.sweep.plot import plot

    paths = [report.sweep_dir / "report.csv", report.sweep_dir / "report.md", report.sweep_dir / "report.png"]
    write_atomically(paths[0], buffer.getvalue())
    plot(report, paths[2])
    write_atomically(paths[1], markdown(report))
    return paths


def _numeric(values: list) -> bool:
    try:
        [float(v) for v in values]
    except (TypeError, ValueError):
        return False
    return True


def x_axis_key(report: SweepReport) -> str | None:
    """The first swept value (other than the seed) that is numeric in every job: the x axis."""
    return next((k for k in report.variant_keys if _numeric([g["variant"][k] for g in report.groups])), None)


def print_summary(report: SweepReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report.sweep_dir.name}: {report.score or 'no score'} per variant (mean over seeds, 95% CI)")
    for column in ("variant", "jobs", "mean", "95% CI", "failed"):
        table.add_column(column)
    for g in report.groups:
        ci = "-" if g["ci95"][0] is None else f"[{g['ci95'][0]:.4g}, {g['ci95'][1]:.4g}]"
        table.add_row(variant_label(g["variant"]), str(g["jobs"]), _fmt(g["mean"]), ci, str(g["failed"]))
    Console().print(table)
    for r in report.jobs:
        if r["status"] == "failed":
            print(f"failed: job {r['job']} ({variant_label({k: r.get(k) for k in report.swept})}): {r.get('error', '')}")
    print(f"wrote {', '.join(str(p) for p in report.files)}")
