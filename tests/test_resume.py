"""Resuming is exact: a tiny run stopped after N optimizer steps (mid-epoch, mid-way through its
accumulation plan) and resumed to N+M ends with the weights of an uninterrupted N+M run:
optimizer, scheduler, dropout randomness and data position all restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lima_recipes.data.batching import BatchShape, GlobalBatchSampler

# 40 sample examples / 8 per step = 5 steps per epoch; 2 epochs = 10 steps; micro-batches of 2
# make 4 accumulation steps per optimizer step.
RUN = ["trainer.max_epochs=2", "trainer.checkpoint_epochs=[1,2]", "trainer.enable_progress_bar=false",
       "trainer.micro_batch_size=2", "trainer.checkpoint_every_n_steps=1"]


class Stop(RuntimeError):
    """Stands for a kill: raised right after the step-N checkpoint is written."""


def test_sampler_resumes_after_the_steps_already_done():
    lengths = np.arange(10, 50)
    shape = BatchShape(8, 2, 1)
    full = list(GlobalBatchSampler(lengths, lengths, shape, rank=0, seed=3))
    resumed = GlobalBatchSampler(lengths, lengths, shape, rank=0, seed=3)
    resumed.resume_at(epoch=0, steps_done=3)
    assert list(resumed) == full[3 * shape.accumulation:]
    assert list(resumed) == full  # the skip applies to the interrupted pass only
    other_epoch = GlobalBatchSampler(lengths, lengths, shape, rank=0, seed=3)
    other_epoch.resume_at(epoch=1, steps_done=3)
    assert list(other_epoch) == full  # epoch 0 is not the interrupted one


def final_weights(run_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run_dir / "export" / "model.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("stop_after", [3, 5])  # mid-epoch, and exactly at an epoch boundary
def test_resume_after_n_steps_equals_an_uninterrupted_run(compose_cfg, tmp_path, monkeypatch, stop_after):
    from lima_recipes.model.export import load_checkpoint_weights
    from lima_recipes.train import callbacks
    from lima_recipes.train.run import run_training

    reference = run_training(compose_cfg(*RUN, f"run.output_root={tmp_path}/a"), tmp_path / "a")
    assert reference["steps"] == 10

    interrupted = tmp_path / "b"
    original = callbacks.EpochCheckpoint._save

    def save_then_stop(self, trainer, path, weights_only=False):
        original(self, trainer, path, weights_only)
        if path.name == "last.ckpt" and trainer.global_step == stop_after:
            raise Stop(f"stopped after step {stop_after}")

    monkeypatch.setattr(callbacks.EpochCheckpoint, "_save", save_then_stop)
    with pytest.raises(Stop):
        run_training(compose_cfg(*RUN, f"run.output_root={tmp_path}/b"), interrupted)
    monkeypatch.setattr(callbacks.EpochCheckpoint, "_save", original)
    last = interrupted / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == stop_after
    assert not (interrupted / "COMPLETED").exists()
    before = load_checkpoint_weights(last)

    resumed = run_training(compose_cfg(*RUN, f"run.output_root={tmp_path}/b"), interrupted)
    assert resumed["steps"] == 10
    ours, theirs = final_weights(interrupted), final_weights(tmp_path / "a")
    assert not all(torch.equal(before[k], ours[k]) for k in ours)  # it did train after resuming
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-6, atol=1e-7, msg=name)
