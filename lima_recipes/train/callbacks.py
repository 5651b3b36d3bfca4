"""Callbacks: keep the weights of chosen epochs (1-based names) and a `last.ckpt` for resuming."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import lightning as L

from lima_recipes.train.hf_checkpoint import replace_dir

EPOCH_DIR = re.compile(r"epoch=\d+")


class EpochCheckpoint(L.Callback):
    """Saves `epoch=05/` ... for the epochs LIMA selects from, and `last.ckpt` after every epoch
    and, with `every_n_steps`, every N optimizer steps inside an epoch.

    A kept epoch is a complete Hugging Face directory (weights in the run's save dtype, config,
    tokenizer, generation config), written by `save_weights` from whatever each rank holds:
    generation, dev-set selection and the export read it with plain `from_pretrained`.
    `last.ckpt` goes through `trainer.save_checkpoint`, so each strategy writes its own resumable
    state: one file, or a directory with one file per rank (FSDP2, DeepSpeed). Lightning's
    ModelCheckpoint names epochs from 0 and cannot keep an explicit set of epochs. Everything is
    written beside its final name and then renamed, so a job killed while saving (a SLURM time
    limit, a preemption) still finds the previous complete checkpoint.
    """

    def __init__(self, dirpath: str | Path, epochs: list[int], save_last: bool = True, every_n_steps: int = 0,
                 save_weights: Callable[..., Path] | None = None):
        self.dirpath = Path(dirpath)
        self.epochs = set(epochs)
        self.save_last = save_last
        self.every_n_steps = every_n_steps
        self.save_weights = save_weights
        """(trainer, module, path, metadata) -> path; collective, called on every rank."""
        self.last_good: Path | None = None
        self._saved_at_step = -1

    @staticmethod
    def epoch_path(dirpath: str | Path, epoch: int) -> Path:
        return Path(dirpath) / f"epoch={epoch:02d}"

    def kept(self) -> list[Path]:
        return sorted(p for p in self.dirpath.glob("epoch=*") if EPOCH_DIR.fullmatch(p.name))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if (not self.save_last or self.every_n_steps <= 0 or trainer.fast_dev_run or step == 0
                or step % self.every_n_steps or step == self._saved_at_step
                or batch_idx + 1 >= trainer.num_training_batches):  # the epoch end saves this one
            return
        self._save_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs and self.save_weights is not None:
            # Weights only: these are candidates for export, and optimizer state would triple
            # their size; last.ckpt carries the full state for resuming.
            self.save_weights(trainer, pl_module, self.epoch_path(self.dirpath, epoch), {"epoch": epoch, "step": trainer.global_step})
        if self.save_last:
            self._save_last(trainer)

    def _save_last(self, trainer: L.Trainer) -> None:
        path = self.dirpath / "last.ckpt"
        staging = path.with_name(path.name + ".partial")
        if trainer.is_global_zero and staging.is_dir():  # left by a save that was killed
            shutil.rmtree(staging)
        trainer.strategy.barrier()
        trainer.save_checkpoint(staging)  # ends with a barrier: every rank has written
        if trainer.is_global_zero:
            replace(staging, path)
        trainer.strategy.barrier()
        self.last_good = path
        self._saved_at_step = trainer.global_step


def replace(staging: Path, path: Path) -> None:
    """Move a finished checkpoint (a file, or a sharded checkpoint's directory) to its final name."""
    if staging.is_dir():
        replace_dir(staging, path)
    else:
        os.replace(staging, path)
