"""What a sweep launched, on disk beside its jobs: `_sweep/launch.json` (the swept keys, written
when the sweep starts) and `_sweep/jobs/NNNN.json` (one per job, written as it starts).

Job directories are keyed by the hash of their resolved config, so a sweep directory can also
hold runs of earlier launches; the manifest says which jobs belong to the latest one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from lima_recipes.io import write_atomically

MANIFEST = "_sweep"

SWEEP_DIR_ENV = "LIMA_SWEEP_DIR"
"""The launch's sweep directory, for its jobs: Hydra resolves hydra.sweep.dir again for every job,
and a job whose swept value changes run.name (data=a,b with run.name=${model.name}-${data.name})
would otherwise record itself in another folder's manifest. SLURM jobs inherit it (sbatch
exports the environment)."""


def sweep_dir(hydra_cfg) -> Path:
    return Path(os.environ.get(SWEEP_DIR_ENV) or hydra_cfg.sweep.dir)


def parse_overrides(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(overrides))


def swept_keys(task_overrides: list[str], sweeper_params: dict | None) -> list[str]:
    """Keys a sweep varies: sweep syntax on the command line (a,b / range / choice) or in the
    preset's `hydra.sweeper.params`, in that order of appearance."""
    params = [f"{key}={value}" for key, value in (sweeper_params or {}).items()]
    final = {}
    for o in parse_overrides([*params, *task_overrides]):  # the command line wins over the preset
        if not o.is_hydra_override():
            final[o.key_or_group] = o.is_sweep_override()
    return [key for key, swept in final.items() if swept]


def job_values(job_overrides: list[str], keys: list[str]) -> dict[str, str]:
    """The value each swept key has in one job (its overrides are concrete)."""
    values = {o.key_or_group: o.get_value_element_as_str() for o in parse_overrides(job_overrides) if not o.is_sweep_override()}
    return {key: values[key] for key in keys if key in values}


def record_launch(sweep_dir: Path, task_overrides: list[str], sweeper_params: dict | None) -> dict:
    """Start a new manifest: the previous launch's job list is replaced, its job folders stay."""
    root = sweep_dir / MANIFEST
    shutil.rmtree(root / "jobs", ignore_errors=True)
    launch = {"created": utc_now(), "command": sys.argv, "overrides": list(task_overrides),
              "sweeper_params": dict(sweeper_params or {}), "swept": swept_keys(task_overrides, sweeper_params)}
    write_atomically(root / "launch.json", json.dumps(launch, indent=2))
    return launch


def read_launch(sweep_dir: Path) -> dict:
    path = sweep_dir / MANIFEST / "launch.json"
    return json.loads(path.read_text()) if path.is_file() else {"swept": [], "overrides": []}


def record_job(sweep_dir: Path, num: int, run_dir: Path, job_overrides: list[str]) -> dict:
    job = {"num": num, "run_id": run_dir.name, "dir": str(run_dir), "overrides": list(job_overrides),
           "swept": job_values(job_overrides, read_launch(sweep_dir)["swept"]), "started": utc_now()}
    write_atomically(sweep_dir / MANIFEST / "jobs" / f"{num:04d}.json", json.dumps(job, indent=2))
    return job


def record_outcome(sweep_dir: Path, num: int, status: str, **extra) -> None:
    """done, skipped or failed (with the error and the evaluation key), added to the job's entry."""
    path = sweep_dir / MANIFEST / "jobs" / f"{num:04d}.json"
    job = json.loads(path.read_text()) if path.is_file() else {"num": num}
    job.update(status=status, finished=utc_now(), **extra)
    write_atomically(path, json.dumps(job, indent=2))


def read_jobs(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((sweep_dir / MANIFEST / "jobs").glob("*.json"))]


def latest_sweep(output_root: Path) -> Path | None:
    """The sweep directory whose launch is the most recent (none when nothing was swept)."""
    launches = sorted(output_root.glob(f"*/{MANIFEST}/launch.json"), key=lambda p: p.stat().st_mtime)
    return launches[-1].parent.parent if launches else None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
