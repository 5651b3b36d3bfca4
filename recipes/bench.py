"""`make bench`: measured figures against what users would pick instead, each the median of
repeats after a warm-up, written to JSON (with versions, cores and git commit) and to
docs/benchmarks.md with a chart. `--quick` runs every section at toy size (the smoke test)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def environment() -> dict:
    import lightning
    import torch
    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = None
    return {"torch": torch.__version__, "transformers": transformers.__version__, "lightning": lightning.__version__,
            "trl": trl_version, "python": platform.python_version(), "machine": platform.machine(), "cores": os.cpu_count(),
            "cuda": torch.cuda.is_available(), "git_commit": commit, "date": time.strftime("%Y-%m-%d")}


SIZES = {
    # section: (full, quick) keyword arguments
    "step_overhead": ({}, {"steps": 2, "windows": 3, "rounds": 1, "batch": 2, "length": 64}),
    "lima_mix": ({}, {"examples": 8, "global_batch": 4, "micro_batch": 2, "epochs": 3, "full_scale": 0.02}),
    "data_prep": ({}, {"scale": 0.05}),
    "startup": ({}, {"repeats": 1, "warmup": False}),
    "generation": ({}, {"max_new_tokens": 4, "max_prompts": 3}),
    "curation": ({"megabytes": 8.0, "scale": 4, "repeats": 3}, {"megabytes": 0.3, "scale": 2, "repeats": 1}),
    "gpu": ({}, {"micro_batch": 1, "global_batch": 2, "length": 256, "warmup": 1, "window_steps": 1, "max_layers": 2}),
    "sharded": ({}, {"rounds": 1, "epochs": 1, "warmup_steps": 1, "hidden": 128, "layers": 2}),
    "real_width": ({}, {"preset": "tiny", "batch": 2, "length": 64, "windows": 1, "other_windows": 1}),
    "real_width_mix": ({}, {"preset": "tiny", "layers": 1, "scale": 0.004}),
}


def run_sections(quick: bool, only: list[str] | None, workdir: Path) -> dict:
    from lima_recipes.bench.curation import bench_curation
    from lima_recipes.bench.data_prep import bench_data_prep
    from lima_recipes.bench.generation import bench_generation
    from lima_recipes.bench.real_width import real_width_mix, real_width_section
    from lima_recipes.bench.sharded import sharded_section
    from lima_recipes.bench.startup import bench_startup
    from lima_recipes.bench.training import lima_mix_throughput, memory_section, step_overhead

    size = {name: sizes[1 if quick else 0] for name, sizes in SIZES.items()}
    wanted = lambda name: only is None or name in only  # noqa: E731
    report: dict = {}
    steps = [
        ("curation", lambda: bench_curation(**size["curation"])),  # before torch is imported here
        ("step_overhead", lambda: step_overhead(workdir / "step", **size["step_overhead"])),
        ("lima_mix", lambda: lima_mix_throughput(workdir / "mix", **size["lima_mix"])),
        ("data_prep", lambda: bench_data_prep(workdir / "data", **size["data_prep"])),
        ("startup", lambda: bench_startup(**size["startup"])),
        ("generation", lambda: bench_generation(workdir / "generation", **size["generation"])),
        ("sharded", lambda: sharded_section(workdir / "sharded", **size["sharded"])),
        ("real_width", lambda: real_width_section(workdir / "real_width", **size["real_width"])),
        ("real_width_mix", lambda: real_width_mix(workdir / "real_width_mix", **size["real_width_mix"])),
    ]
    for name, run in steps:
        if wanted(name):
            started = time.perf_counter()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            report[name] = run()
            report[name]["section_seconds"] = time.perf_counter() - started
    if wanted("gpu"):
        import torch

        if torch.cuda.is_available():
            from lima_recipes.bench.gpu import gpu_section

            print("bench: gpu ...", file=sys.stderr, flush=True)
            report["gpu"] = gpu_section(workdir / "gpu", **size["gpu"])
        else:
            report["gpu"] = {"note": "no CUDA on this machine: skipped"}
    if "lima_mix" in report:
        report["memory"] = memory_section(workdir / "mix", report["lima_mix"], micro_batch=report["lima_mix"]["mix"]["micro_batch"])
    return report


def main() -> None:
    from lima_recipes.bench.report import print_table, write_docs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"))
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="where benchmarks.md and its chart go (not with --quick)")
    parser.add_argument("--quick", action="store_true", help="every section at toy size: checks the bench, measures nothing useful")
    parser.add_argument("--only", nargs="*", choices=list(SIZES), help="run only these sections")
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = run_sections(args.quick, args.only, Path(tmp))
    report = {"environment": environment(), "command": "make bench" + (" ARGS=--quick" if args.quick else ""), **report}
    report["total_seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"wrote {path} ({report['total_seconds']:.0f} s)")
    if not args.quick and args.only is None:
        for written in write_docs(report, "make bench", args.docs):
            print(f"wrote {written}")


if __name__ == "__main__":
    main()
