"""Evaluation results in W&B: a linked `eval` run in the training run's group, holding the
headline table, every judgement and the generations as W&B tables.

A separate run (rather than resuming the training run) keeps offline runs syncable later with
`wandb sync`: two offline writers of one run id would collide.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from lima_recipes.eval.report import table_rows


def training_logger_cfg(run_dir: Path):
    """The training run's logger settings, or None when the run did not log to W&B."""
    config = run_dir / "config.yaml"
    if not config.is_file():
        return None, None
    cfg = OmegaConf.load(config)
    logger = cfg.get("logger")
    return (logger if logger is not None and logger.get("wandb") else None), cfg


def log_tables(run_dir: Path, eval_name: str, tables: dict[str, list[dict]], scalars: dict, config: dict,
               enabled: bool | None) -> str | None:
    """Log when `enabled`, or when None and the training run used W&B; returns the W&B run dir.
    `tables` maps a name to rows (dicts sharing keys), logged as `eval/<eval_name>/<name>`."""
    logger, train_cfg = training_logger_cfg(run_dir)
    if enabled is False or (enabled is None and logger is None):
        return None
    import wandb

    # The judge's openai import makes W&B advertise Weave tracing; nothing here is traced.
    os.environ.setdefault("WANDB_DISABLE_WEAVE", "true")
    mode = (logger.get("mode") if logger is not None else None) or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    run_name = train_cfg.run.name if train_cfg is not None and "run" in train_cfg else run_dir.parent.name
    run = wandb.init(
        project=(logger.project if logger is not None else "lima-recipes"),
        entity=(logger.get("entity") if logger is not None else None),
        group=run_name, job_type="eval", name=f"{run_name}-{run_dir.name}-{eval_name}",
        dir=str(run_dir), mode=mode, tags=[run_name, "eval", eval_name],
        config={"train_run_id": run_dir.name, "eval": eval_name, **config},
    )
    try:
        logged = {}
        for name, rows in tables.items():
            columns = list(dict.fromkeys(k for r in rows for k in r))
            logged[f"eval/{eval_name}/{name}"] = wandb.Table(columns=columns, data=[[_cell(r.get(c)) for c in columns] for r in rows])
        run.log(logged)
        run.summary.update({f"eval/{eval_name}/{k}": v for k, v in scalars.items()})
        return run.dir
    finally:
        run.finish()


def judged_tables(summary: dict, records: list[dict]) -> tuple[dict[str, list[dict]], dict]:
    """The headline table, every judgement (raw replies included) and the scalars to summarise."""
    header, rows = table_rows(summary)
    scalars = {}
    for key, value in summary["results"].items():
        if isinstance(value, dict) and value.get("percent") is not None:
            scalars[f"{key}_percent"] = value["percent"]
        elif isinstance(value, dict) and value.get("mean") is not None:
            scalars[f"{key}_mean"] = value["mean"]
    return {"results": [dict(zip(header, row)) for row in rows], "judgements": records}, scalars


def _cell(value):
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
