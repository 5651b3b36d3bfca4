"""Lightning's CSV logger, except that a resumed run appends to the run's metrics.csv.

Lightning's writer deletes an existing metrics.csv when a logger starts in a non-empty folder,
so resuming an interrupted run (or re-running a job whose marker was removed) would erase the
curves of every epoch before the interruption.
"""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                # The existing header: rows are appended under it, and a new key rewrites the
                # file with the wider header, old rows included.
                self.metrics_keys = list(csv.DictReader(handle).fieldnames or [])


class AppendingCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
