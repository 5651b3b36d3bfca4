"""One job, as `make train` and every point of a sweep run it: train (or resume, or skip), then the
evaluation after training, leaving markers a sweep report reads.

`COMPLETED` is written when training and export are done, and rewritten (atomically) to record
each evaluation that finished after it: a job is finished when its COMPLETED names the requested
evaluation, and a re-run of a finished job does nothing. `FAILED` records why a job stopped; it
is removed when the job later finishes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import traceback
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lima_recipes.errors import LimaError, one_line
from lima_recipes.io import write_atomically
from lima_recipes.train.run import COMPLETED, run_training

log = logging.getLogger(__name__)

FAILED = "FAILED"


def eval_key(cfg: DictConfig) -> str | None:
    """Names the evaluation after training and everything that decides its result."""
    if cfg.eval.kind == "none":
        return None
    decides = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("eval", "judge", "prompts", "generation")}
    blob = json.dumps(decides, sort_keys=True, default=str).encode()
    return f"{cfg.eval.name}@{hashlib.sha256(blob).hexdigest()[:8]}"


def read_marker(run_dir: Path, name: str = COMPLETED) -> dict | None:
    path = run_dir / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a marker that cannot be read does not count as finished


def is_finished(run_dir: Path, key: str | None) -> bool:
    done = read_marker(run_dir)
    return done is not None and (key is None or key in done.get("evals", {}))


def is_global_zero() -> bool:
    """Rank 0 of the job, the one that evaluates and writes markers (DDP, SLURM tasks)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def run_job(cfg: DictConfig, run_dir: str | Path, sweep: dict | None = None) -> dict:
    """Train, then evaluate; a finished job is skipped, an unfinished one resumes from last.ckpt."""
    run_dir = Path(run_dir)
    key = eval_key(cfg)
    if is_finished(run_dir, key):
        log.info("%s is finished; delete its COMPLETED file to export and evaluate again (its folder, to train again)", run_dir)
        return {**read_marker(run_dir), "skipped": True}
    try:
        result = run_training(cfg, run_dir, sweep=sweep)
        if key is not None and is_global_zero():
            from lima_recipes.eval.app import evaluate_after_training

            evaluation = evaluate_after_training(cfg, run_dir)
            result = record_evaluation(run_dir, key, cfg.eval.name, evaluation)
    except Exception as err:
        # Only failures: a SystemExit (SLURM preemption, submitit's requeue) or a Ctrl-C
        # interrupts a job that will resume, it does not fail it.
        if is_global_zero():
            record_failure(run_dir, err)
        raise
    if is_global_zero():
        (run_dir / FAILED).unlink(missing_ok=True)
    return result


def record_evaluation(run_dir: Path, key: str, name: str, evaluation: dict) -> dict:
    done = read_marker(run_dir) or {}
    done.setdefault("evals", {})[key] = {"name": name, "finished": _now(), **evaluation}
    write_atomically(run_dir / COMPLETED, json.dumps(done, indent=2))
    return done


def record_failure(run_dir: Path, err: BaseException) -> None:
    """Why the job stopped: the one-line message for user errors, the traceback's tail otherwise."""
    detail = {"error": one_line(err), "type": type(err).__name__, "time": _now()}
    if not isinstance(err, LimaError):
        detail["traceback"] = "".join(traceback.format_exception(err))[-4000:]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(run_dir / FAILED, json.dumps(detail, indent=2))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
