"""One point of a sweep: run the job, record its outcome in the manifest, and never let one
failed point stop the others."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from lima_recipes.errors import LimaError
from lima_recipes.io import write_atomically
from lima_recipes.sweep import manifest
from lima_recipes.train.job import run_job

log = logging.getLogger(__name__)


def run_sweep_job(cfg, hydra_cfg) -> float | None:
    sweep_dir, num = Path(hydra_cfg.sweep.dir), int(hydra_cfg.job.num)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    swept = manifest.job_values(overrides, manifest.read_launch(sweep_dir)["swept"])
    sweep = {"name": cfg.run.name, "dir": str(sweep_dir), "job": num, "swept": swept}
    label = ", ".join(f"{k}={v}" for k, v in swept.items()) or f"job {num}"
    saved_argv, saved_env = sys.argv, dict(os.environ)
    # Lightning starts DDP ranks 1.. by re-running the command line. A sweep's command line is the
    # whole sweep: each rank would run every job. Give them this job's overrides instead.
    sys.argv = [sys.argv[0], *overrides, "hydra.mode=RUN"]
    try:
        result = run_job(cfg, run_dir, sweep=sweep)
    except Exception as err:  # noqa: BLE001 - recorded in FAILED and the manifest; the sweep goes on
        message = str(err).splitlines()[0] if isinstance(err, LimaError) else f"{type(err).__name__}: {err}"
        print(f"error: job {num} ({label}) failed: {message} (recorded in {run_dir / 'FAILED'})", file=sys.stderr)
        _finish(sweep_dir, num, "failed", error=message)
        return None
    finally:
        sys.argv = saved_argv
        _leave_no_process_group(saved_env)
    _finish(sweep_dir, num, "skipped" if result.get("skipped") else "done")
    return result.get("val/loss", result.get("train/loss"))


def _leave_no_process_group(env: dict[str, str]) -> None:
    """The jobs of a local sweep share one process: a DDP job's process group (its peers have
    exited) and the MASTER_PORT/WORLD_SIZE it exported must not leak into the next job."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    os.environ.clear()
    os.environ.update(env)


def _finish(sweep_dir: Path, num: int, status: str, **extra) -> None:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:
        return
    path = sweep_dir / manifest.MANIFEST / "jobs" / f"{num:04d}.json"
    job = json.loads(path.read_text()) if path.is_file() else {"num": num}
    job.update(status=status, finished=manifest.utc_now(), **extra)
    write_atomically(path, json.dumps(job, indent=2))
