"""The W&B side of a sweep report: the runs of the sweep's W&B group (one run per job, its id the
job's config hash), read through the public API when a key is set and W&B is online."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def logger_settings(rows: list[dict]):
    """project, entity, group and whether the jobs logged to W&B, from the first job's config."""
    for row in rows:
        path = Path(row["dir"]) / "config.yaml"
        if path.is_file():
            cfg = OmegaConf.load(path)
            return cfg.logger.project, cfg.logger.get("entity"), cfg.run.name, bool(cfg.logger.wandb)
    return None, None, None, False


def merge_wandb(rows: list[dict], use_wandb: bool | None) -> str:
    """Adds wandb_state and wandb_url to each row whose run W&B knows (and the losses W&B has
    where the local files lack them); returns a line saying what was read."""
    project, entity, group, logged = logger_settings(rows)
    if project is None or (use_wandb is None and not logged):
        return "off (the jobs did not log to W&B)"
    if not os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return "offline: this report uses the local files; `wandb sync <job dir>/wandb/offline-run-*` uploads the runs"
    import wandb

    try:
        api = wandb.Api(timeout=30)
        path = f"{entity or api.default_entity}/{project}"
        runs = {run.id: run for run in api.runs(path, filters={"group": group})}
    except Exception as err:  # noqa: BLE001 - the local report stands without W&B
        return f"unreachable ({type(err).__name__}: {str(err)[:120]}); this report uses the local files"
    for row in rows:
        run = runs.get(row["run_id"])
        if run is None:
            continue
        row["wandb_state"], row["wandb_url"] = run.state, run.url
        for key in ("train/loss", "val/loss"):
            if key not in row and key in run.summary:
                row[key] = run.summary[key]
    return f"read {len(runs)} run(s) of group `{group}` in {path}"
