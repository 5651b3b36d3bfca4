"""One point of a sweep: run the job, record its outcome in the manifest, and never let one
failed point stop the others."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from lima_recipes.errors import one_line
from lima_recipes.sweep import manifest
from lima_recipes.train.job import eval_key, is_global_zero, run_job

DDP_CHILD_ENV = "LIMA_SWEEP_DDP_CHILD"
"""Set for the DDP ranks Lightning starts inside a sweep job (they inherit the environment)."""


def run_sweep_job(cfg, hydra_cfg) -> float | None:
    sweep_dir, num = manifest.sweep_dir(hydra_cfg), int(hydra_cfg.job.num)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    swept = manifest.job_values(overrides, manifest.read_launch(sweep_dir)["swept"])
    sweep = {"name": sweep_dir.name, "dir": str(sweep_dir), "job": num, "swept": swept}
    label = ", ".join(f"{k}={v}" for k, v in swept.items()) or f"job {num}"
    key = eval_key(cfg)
    saved_argv, saved_env = sys.argv, dict(os.environ)
    # Lightning starts DDP ranks 1.. by re-running the command line. A sweep's command line is the
    # whole sweep: each rank would run every job. Give them this job's overrides instead.
    sys.argv = [sys.argv[0], *overrides, "hydra.mode=RUN"]
    os.environ[DDP_CHILD_ENV] = "1"
    failed = True
    try:
        result = run_job(cfg, run_dir, sweep=sweep)
        failed = False
    except Exception as err:  # noqa: BLE001 - recorded in FAILED and the manifest; the sweep goes on
        message = one_line(err)
        print(f"error: job {num} ({label}) failed: {message} (recorded in {run_dir / 'FAILED'})", file=sys.stderr)
        _finish(sweep_dir, num, "failed", error=message, eval_key=key)
        return None
    finally:
        sys.argv = saved_argv
        _end_ddp_children(kill=failed)
        _leave_no_process_group(saved_env)
    _finish(sweep_dir, num, "skipped" if result.get("skipped") else "done", eval_key=key)
    return result.get("val/loss", result.get("train/loss"))


def is_ddp_child() -> bool:
    """A rank > 0 that Lightning started for a sweep job (its rank 0 records the job's outcome)."""
    return bool(os.environ.get(DDP_CHILD_ENV)) and int(os.environ.get("LOCAL_RANK", "0")) > 0


def run_ddp_child(cfg, run_dir: str | Path) -> None:
    """Lightning watches the ranks it starts and kills the main process when one exits with an
    error; in a sweep the main process is the whole sweep. This rank's failure reaches rank 0
    through the collectives, and rank 0 records it, so the rank itself exits quietly."""
    try:
        run_job(cfg, run_dir)
    except Exception as err:  # noqa: BLE001 - see the docstring
        print(f"rank {os.environ.get('LOCAL_RANK')}: {one_line(err)} (the job's rank 0 records the failure)", file=sys.stderr)


def _end_ddp_children(kill: bool) -> None:
    """After a DDP job: stop Lightning's watcher of its ranks and reap them. A rank still running
    after a failure is stuck in a collective its peer left: it is killed, not waited for."""
    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    for thread in threading.enumerate():
        if isinstance(thread, _ChildProcessObserver):
            children, thread._child_processes = list(thread._child_processes), []
            thread._finished = True
            for child in children:
                if kill:
                    child.kill()
                try:
                    child.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


def _leave_no_process_group(env: dict[str, str]) -> None:
    """The jobs of a local sweep share one process: a DDP job's process group (its peers have
    exited) and the MASTER_PORT/WORLD_SIZE it exported must not leak into the next job."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    os.environ.clear()
    os.environ.update(env)


def _finish(sweep_dir: Path, num: int, status: str, **extra) -> None:
    if is_global_zero():
        manifest.record_outcome(sweep_dir, num, status, **extra)
