"""Callbacks: keep the weights of chosen epochs (1-based names) and a `last.ckpt` for resuming."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class EpochCheckpoint(L.Callback):
    """Saves `epoch=05.ckpt` ... for the epochs LIMA selects from, and `last.ckpt` every epoch.

    Lightning's ModelCheckpoint names epochs from 0 and cannot keep an explicit set of epochs;
    this writes through `trainer.save_checkpoint`, so every strategy's sharded saving still applies.
    """

    def __init__(self, dirpath: str | Path, epochs: list[int], save_last: bool = True):
        self.dirpath = Path(dirpath)
        self.epochs = set(epochs)
        self.save_last = save_last
        self.last_good: Path | None = None

    @staticmethod
    def epoch_path(dirpath: str | Path, epoch: int) -> Path:
        return Path(dirpath) / f"epoch={epoch:02d}.ckpt"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs:
            path = self.epoch_path(self.dirpath, epoch)
            # Weights only: these are candidates for export, and optimizer state would triple
            # their size; last.ckpt carries the full state for resuming.
            trainer.save_checkpoint(path, weights_only=True)
            self.last_good = path
        if self.save_last:
            path = self.dirpath / "last.ckpt"
            trainer.save_checkpoint(path)
            self.last_good = path
