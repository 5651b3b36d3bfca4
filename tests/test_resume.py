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
       "trainer.micro_batch_size=2"]


class Stop(RuntimeError):
    """Stands for a kill after optimizer step N (and its checkpoint, when one is due)."""


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


def losses(run_dir) -> list[tuple[int, float]]:
    import csv

    rows = csv.DictReader((run_dir / "metrics.csv").open())
    return [(int(r["step"]), float(r["train/loss"])) for r in rows if r.get("train/loss")]


def final_weights(run_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run_dir / "export" / "model.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("stop_after,every,workers,resumes_at", [
    (3, 1, 0, 3),  # mid-epoch 1 of 2
    (6, 0, 0, 5),  # epoch-end checkpoints only: back to the end of epoch 1
    (7, 1, 1, 7),  # mid-epoch 2, with a worker process drawing micro-batches ahead
    (5, 3, 0, 3),  # two steps after the last checkpoint: steps 3-4 are trained and logged twice
])
def test_resume_after_n_steps_equals_an_uninterrupted_run(compose_cfg, tmp_path, monkeypatch, stop_after, every, workers, resumes_at):
    from lima_recipes.train import callbacks
    from lima_recipes.train.run import run_training

    run = [*RUN, f"data.num_workers={workers}", f"trainer.checkpoint_every_n_steps={every}"]
    reference = run_training(compose_cfg(*run), tmp_path / "a")
    assert reference["steps"] == 10

    interrupted = tmp_path / "b"
    original = callbacks.EpochCheckpoint.on_train_batch_end

    def stop_after_step(self, trainer, *args):
        original(self, trainer, *args)
        if trainer.global_step == stop_after:
            raise Stop(f"stopped after step {stop_after}")

    monkeypatch.setattr(callbacks.EpochCheckpoint, "on_train_batch_end", stop_after_step)
    with pytest.raises(Stop):
        run_training(compose_cfg(*run), interrupted)
    monkeypatch.setattr(callbacks.EpochCheckpoint, "on_train_batch_end", original)
    last = interrupted / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == resumes_at
    assert not (interrupted / "COMPLETED").exists()
    before = {k.removeprefix("model."): v for k, v in torch.load(last, weights_only=False)["state_dict"].items()}

    resumed = run_training(compose_cfg(*run), interrupted)
    assert resumed["steps"] == 10
    ours, theirs = final_weights(interrupted), final_weights(tmp_path / "a")
    assert not all(torch.equal(before[k], ours[k]) for k in ours)  # it did train after resuming
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-6, atol=1e-7, msg=name)
    # metrics.csv keeps the rows the interrupted run wrote (all but the step it was stopped in)
    # and holds each step once, though steps after the checkpoint were logged twice
    curve, reference_curve = losses(interrupted), dict(losses(tmp_path / "a"))
    steps = [step for step, _ in curve]
    assert sorted(steps) == steps and len(set(steps)) == len(steps)
    assert set(range(stop_after - 1)) | set(range(resumes_at, 10)) <= set(steps)
    for step, loss in curve:
        assert loss == pytest.approx(reference_curve[step], rel=1e-5), step
