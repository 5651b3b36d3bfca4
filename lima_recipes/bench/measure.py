"""What every benchmark section shares: the spread of repeated figures and measurements run in a
fresh Python process (so that imports, caches and peak memory are the measurement's own)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def run_child(module: str, spec: dict, timeout: float = 900) -> dict:
    """`python -m <module> '<spec json>'`, whose last stdout line is its JSON result."""
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "WANDB_SILENT": "true",
           "TOKENIZERS_PARALLELISM": "false", "CI": "1"}
    proc = subprocess.run([sys.executable, "-m", module, json.dumps(spec)], capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{module} {spec.get('runner', '')} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
