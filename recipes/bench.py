"""`make bench`: measured figures, each the median of repeats after a warm-up, written to JSON
with the versions, core count and git commit. Sections are added as the paths land."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def environment() -> dict:
    import lightning
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"torch": torch.__version__, "transformers": transformers.__version__, "lightning": lightning.__version__,
            "python": platform.python_version(), "cores": os.cpu_count(), "git_commit": commit}


def main() -> None:
    from lima_recipes.bench.curation import bench_curation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"))
    parser.add_argument("--curation-mb", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    curation = bench_curation(args.curation_mb, 4, args.repeats)
    report = {"environment": environment(), "curation": curation}  # torch imported after measuring
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))

    cur = report["curation"]
    table = Table(title="curation: Stack Exchange XML (median of repeats, min-max)")
    for column in ("input", "MB", "MB/s", "peak RSS MB", "candidates"):
        table.add_column(column, justify="right")
    for label in ("1x", "4x"):
        r = cur[label]
        table.add_row(label, f"{r['input_mb']:.1f}", f"{r['mb_per_s']['median']:.2f} ({r['mb_per_s']['min']:.2f}-{r['mb_per_s']['max']:.2f})",
                      f"{r['peak_rss_mb']['median']:.0f} ({r['peak_rss_mb']['min']:.0f}-{r['peak_rss_mb']['max']:.0f})", str(r["candidates"]))
    console = Console()
    console.print(table)
    console.print(f"peak memory at {cur['input_ratio']:.1f}x the input: {cur['peak_memory_ratio']:.2f}x (flat is 1.0)")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
