"""The Hydra callback every `make train -m` / `make ablate` run carries (conf/train.yaml): it starts
the sweep's manifest, registers each job as it starts, and at the end writes the report and
prints the summary. Single runs pass through it untouched."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from lima_recipes.sweep import manifest

LAST_SWEEP: dict = {}
"""The summary of the sweep this process launched, for the entry point's exit status."""


def _multirun(config: DictConfig) -> bool:
    return config.hydra.mode == RunMode.MULTIRUN


class SweepRecorder(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        params = config.hydra.sweeper.get("params")
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        os.environ[manifest.SWEEP_DIR_ENV] = str(sweep_dir)  # for the jobs, local or submitted
        manifest.record_launch(sweep_dir, list(config.hydra.overrides.task),
                               OmegaConf.to_container(params) if params is not None else None)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _multirun(config):
            manifest.record_job(manifest.sweep_dir(config.hydra), int(config.hydra.job.num),
                                Path(config.hydra.runtime.output_dir), list(config.hydra.overrides.task))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lima_recipes.sweep.report import build_report, print_summary

        report = build_report(manifest.sweep_dir(config.hydra))
        print_summary(report)
        LAST_SWEEP.clear()
        LAST_SWEEP.update(failed=[j["job"] for j in report.jobs if j["status"] == "failed"], dir=str(report.sweep_dir))
