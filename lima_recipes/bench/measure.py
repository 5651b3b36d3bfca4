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


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS), or one part of it (RssAnon: its own memory,
    not the page cache of files it maps)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


class AnonPeak:
    """Peak anonymous memory over a block, sampled every 2 ms: what the process itself holds, not
    the page cache of mapped checkpoint files, which the kernel shares between ranks and reclaims."""

    def __enter__(self):
        import threading

        self.before = self.peak = rss_mb("RssAnon")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.002):
            self.peak = max(self.peak, rss_mb("RssAnon"))

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb("RssAnon"))
