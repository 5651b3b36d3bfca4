"""Lightning's CSV logger, except that a resumed run appends to the run's metrics.csv.

Lightning's writer deletes an existing metrics.csv when a logger starts in a non-empty folder,
so resuming an interrupted run (or re-running a job whose marker was removed) would erase the
curves of every epoch before the interruption.
"""

from __future__ import annotations

import csv

import lightning as L
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


class ForgetLogsAfterCheckpoint(L.Callback):
    """A run resumed from step N repeats the steps the interrupted run logged after N; their rows
    are dropped first, so metrics.csv holds each step once."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0 or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, AppendingCSVLogger):
                writer = logger.experiment
                writer.save()  # anything held in memory goes to the file before it is filtered
                drop_rows_from(writer, trainer.global_step)


def drop_rows_from(writer: ExperimentWriter, step: int) -> None:
    if not writer._fs.isfile(writer.metrics_file_path):
        return
    with writer._fs.open(writer.metrics_file_path, "r", newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = [row for row in rows if not row.get("step") or int(float(row["step"])) < step]
    if len(kept) == len(rows):
        return
    with writer._fs.open(writer.metrics_file_path, "w", newline="") as handle:
        out = csv.DictWriter(handle, fieldnames=fields)
        out.writeheader()
        out.writerows(kept)
