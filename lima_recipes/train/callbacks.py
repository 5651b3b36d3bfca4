"""Callbacks: keep the weights of chosen epochs (1-based names) and a `last.ckpt` for resuming."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import lightning as L


class EpochCheckpoint(L.Callback):
    """Saves `epoch=05.ckpt` ... for the epochs LIMA selects from, and `last.ckpt` after every
    epoch and, with `every_n_steps`, every N optimizer steps inside an epoch.

    Lightning's ModelCheckpoint names epochs from 0 and cannot keep an explicit set of epochs;
    this writes through `trainer.save_checkpoint`, so every strategy's sharded saving still applies.
    Each checkpoint is written beside its final name and then renamed, so a job killed while
    saving (a SLURM time limit, a preemption) still finds the previous complete `last.ckpt`.
    """

    def __init__(self, dirpath: str | Path, epochs: list[int], save_last: bool = True, every_n_steps: int = 0):
        self.dirpath = Path(dirpath)
        self.epochs = set(epochs)
        self.save_last = save_last
        self.every_n_steps = every_n_steps
        self.last_good: Path | None = None
        self._saved_at_step = -1

    @staticmethod
    def epoch_path(dirpath: str | Path, epoch: int) -> Path:
        return Path(dirpath) / f"epoch={epoch:02d}.ckpt"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if (not self.save_last or self.every_n_steps <= 0 or trainer.fast_dev_run or step == 0
                or step % self.every_n_steps or step == self._saved_at_step
                or batch_idx + 1 >= trainer.num_training_batches):  # the epoch end saves this one
            return
        self._save(trainer, self.dirpath / "last.ckpt")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs:
            # Weights only: these are candidates for export, and optimizer state would triple
            # their size; last.ckpt carries the full state for resuming.
            self._save(trainer, self.epoch_path(self.dirpath, epoch), weights_only=True)
        if self.save_last:
            self._save(trainer, self.dirpath / "last.ckpt")

    def _save(self, trainer: L.Trainer, path: Path, weights_only: bool = False) -> None:
        staging = path.with_name(path.name + ".partial")
        trainer.save_checkpoint(staging, weights_only=weights_only)  # ends with a barrier: every rank has written
        if trainer.is_global_zero:
            replace(staging, path)
        self.last_good = path
        self._saved_at_step = trainer.global_step


def replace(staging: Path, path: Path) -> None:
    """Move a finished checkpoint (a file, or a DeepSpeed directory) to its final name."""
    if staging.is_dir():
        retired = path.with_name(path.name + ".old")
        shutil.rmtree(retired, ignore_errors=True)
        if path.exists():
            path.rename(retired)
        staging.rename(path)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, path)
