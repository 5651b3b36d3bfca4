"""A kill in the middle of a training run, for the resume tests (in-process and in dist_worker)."""

from __future__ import annotations

from contextlib import contextmanager


class StopRun(RuntimeError):
    """Stands for a kill after optimizer step N (and its checkpoint, when one is due)."""


def stop_after_step(step: int):
    """From now on a training run raises StopRun right after optimizer step `step`; returns the undo."""
    from lima_recipes.train import callbacks

    original = callbacks.EpochCheckpoint.on_train_batch_end

    def stop(self, trainer, *args):
        original(self, trainer, *args)
        if trainer.global_step == step:
            raise StopRun(f"stopped after step {step}")

    callbacks.EpochCheckpoint.on_train_batch_end = stop
    return lambda: setattr(callbacks.EpochCheckpoint, "on_train_batch_end", original)


@contextmanager
def stopped_after_step(step: int):
    """The training run inside the block stops right after optimizer step `step` (and must)."""
    import pytest

    undo = stop_after_step(step)
    try:
        with pytest.raises(StopRun):
            yield
    finally:
        undo()
