"""`make dashboard`: the W&B view of a sweep, as a spec (always written beside the report) and, when
W&B is online, as a W&B report built from it.

The report holds the loss curves, learning rate and tokens per second of every job (runs of the
sweep's group), a parallel-coordinates view of the swept values against the score, LIMA's
ablation plot (the score against a numeric swept value, or a bar per variant, mean and standard
error over seeds) and the sweep's table. Scores that only the local files hold (the judge's
helpfulness, the automatic metrics) are written into each run's W&B summary first, as eval/<name>,
so the panels can plot them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lima_recipes.io import write_atomically
from lima_recipes.sweep.report import REPLICATE_KEY, SweepReport, markdown_table, x_axis_key
from lima_recipes.sweep.wandb_runs import logger_settings

CURVES = ("train/loss", "val/loss", "train/lr", "train/tokens_per_sec")
LOGGED_BY_TRAINING = {"train/loss", "val/loss"}
CONFIG_GROUPS = {"model", "data", "template", "strategy", "optim", "trainer", "logger"}


def config_key(swept: str) -> str:
    """Where a swept value sits in the run's W&B config: a group choice (data=...) is data.name."""
    return f"{swept}.name" if swept in CONFIG_GROUPS else swept


def summary_key(score: str) -> str:
    return score if score in LOGGED_BY_TRAINING else f"eval/{score}"


def dashboard_spec(report: SweepReport) -> dict:
    project, entity, group, logged = logger_settings(report.jobs)
    score = report.score
    variants = [config_key(k) for k in report.variant_keys]
    x_key = x_axis_key(report)
    scored = [r for r in report.jobs if r["status"] in ("done", "skipped")]
    spec = {
        "title": f"{group or report.sweep_dir.name}: LIMA ablation",
        "entity": entity, "project": project, "group": group, "logged_to_wandb": logged,
        "runs": f"Metric('Group') == '{group}' and Metric('JobType') == 'train'",
        "curves": list(CURVES),
        "parallel_coordinates": [f"config:{config_key(k)}" for k in report.swept] + ([f"summary:{summary_key(score)}"] if score else []),
        "score_plot": None,
        "scores": {r["run_id"]: {f"eval/{k}": v for k, v in r.items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("job", "steps", "examples")
                                  and k not in LOGGED_BY_TRAINING and k not in report.swept} for r in scored},
        "table": markdown_table(report),
    }
    if score:
        if x_key is not None:
            spec["score_plot"] = {"kind": "scatter", "x": f"config:{config_key(x_key)}", "y": f"summary:{summary_key(score)}"}
        else:
            spec["score_plot"] = {"kind": "bar", "metric": f"summary:{summary_key(score)}",
                                  "groupby": f"config:{variants[0]}" if variants else "group", "aggregate": "mean, stderr over " + REPLICATE_KEY}
    return spec


def _field(ref: str):
    import wandb_workspaces.reports.v2 as wr

    section, name = ref.split(":", 1)
    return wr.Config(name) if section == "config" else wr.SummaryMetric(name)


def build_wandb_report(spec: dict):
    """The W&B report object of a spec (saving it is the caller's step)."""
    import wandb_workspaces.reports.v2 as wr

    panels = [wr.LinePlot(title=m, x="Step", y=[m]) for m in spec["curves"]]
    panels.append(wr.ParallelCoordinatesPlot(title="swept values and score", columns=[
        wr.ParallelCoordinatesPlotColumn(metric=_field(c)) for c in spec["parallel_coordinates"]]))
    plot = spec["score_plot"]
    if plot and plot["kind"] == "scatter":
        panels.append(wr.ScatterPlot(title="score against " + plot["x"].split(":", 1)[1], x=_field(plot["x"]), y=_field(plot["y"])))
    elif plot:
        groupby = _field(plot["groupby"]) if plot["groupby"].startswith("config:") else "Group"
        panels.append(wr.BarPlot(title="score per variant", metrics=[_field(plot["metric"])], groupby=groupby,
                                 groupby_aggfunc="mean", groupby_rangefunc="stderr"))
    runset = wr.Runset(entity=spec["entity"] or "", project=spec["project"], name=spec["group"], filters=spec["runs"])
    return wr.Report(project=spec["project"], entity=spec["entity"] or "", title=spec["title"],
                     description="Written by `make dashboard` (lima-recipes) from the sweep's local report.",
                     blocks=[wr.MarkdownBlock(text=spec["table"]), wr.PanelGrid(runsets=[runset], panels=panels)])


def push_scores(spec: dict, api) -> int:
    """Write each job's local scores into its W&B run summary; returns how many runs took them."""
    path = f"{spec['entity'] or api.default_entity}/{spec['project']}"
    updated = 0
    for run_id, scores in spec["scores"].items():
        if not scores:
            continue
        run = api.run(f"{path}/{run_id}")
        for key, value in scores.items():
            run.summary[key] = value
        run.summary.update()
        updated += 1
    return updated


def make_dashboard(report: SweepReport) -> tuple[Path, str]:
    """Writes <sweep>/dashboard.json; online, also pushes scores and saves the W&B report.
    Returns the spec path and a line saying what happened."""
    spec = dashboard_spec(report)
    path = report.sweep_dir / "dashboard.json"
    write_atomically(path, json.dumps(spec, indent=2))
    if not spec["logged_to_wandb"]:
        return path, "the jobs did not log to W&B (logger=wandb); the spec is written, nothing created"
    if not os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return path, ("W&B is offline: spec only. Upload the runs with `wandb sync <job>/wandb/offline-run-*`, then run "
                      "`make dashboard` with WANDB_API_KEY set to create the report")
    try:
        import wandb_workspaces.reports.v2  # noqa: F401
    except ImportError:
        return path, "creating the report needs wandb-workspaces: pip install wandb-workspaces (or .[dev]); spec written"
    import wandb

    try:
        pushed = push_scores(spec, wandb.Api(timeout=60))
        wandb_report = build_wandb_report(spec)
        wandb_report.save()
    except Exception as err:  # noqa: BLE001 - the spec on disk stands; say why W&B refused
        return path, f"could not create the W&B report ({type(err).__name__}: {str(err)[:200]}); the spec is written"
    return path, f"W&B report created: {wandb_report.url} (scores written to {pushed} run summaries)"
