"""The global-batch plan: every example once per epoch, exact global token counts, lockstep ranks,
and less padding when grouping by length."""

from __future__ import annotations

import numpy as np
import pytest

from lima_recipes.data.batching import BatchShape, plan_epoch

rng = np.random.default_rng(0)
LENGTHS = rng.integers(20, 2000, size=103)
TRAINED = (LENGTHS * 0.8).astype(int)


@pytest.mark.parametrize("shape", [BatchShape(16, 1, 1), BatchShape(16, 4, 2), BatchShape(16, 2, 8), BatchShape(32, 16, 2)])
def test_every_example_once_and_exact_global_counts(shape):
    plan = plan_epoch(LENGTHS, TRAINED, shape, seed=1, epoch=0)
    seen = []
    for step in plan:
        assert len(step) == shape.world_size and all(len(r) == shape.accumulation for r in step)
        real = [m for rank in step for m in rank if not m.filler]
        examples = [i for m in real for i in m.indices]
        assert all(len(m.indices) <= shape.micro_batch_size for rank in step for m in rank)
        assert {m.global_trained_tokens for rank in step for m in rank} == {int(TRAINED[examples].sum())}
        seen += examples
    assert sorted(seen) == list(range(len(LENGTHS)))
    assert len(plan) == shape.steps_per_epoch(len(LENGTHS))


def test_short_last_batch_gets_masked_fillers_so_ranks_stay_in_lockstep():
    shape = BatchShape(8, 1, 2)  # 4 accumulation steps x 2 ranks; 3 examples remain at the end
    plan = plan_epoch(LENGTHS[:11], TRAINED[:11], shape, seed=0, epoch=0)
    last = plan[-1]
    assert sum(m.filler for rank in last for m in rank) == 5
    assert sum(len(m.indices) for rank in last for m in rank if not m.filler) == 3


def test_plan_is_deterministic_per_epoch_and_reshuffled_across_epochs():
    shape = BatchShape(16, 4, 1)
    flat = lambda p: [m.indices for step in p for rank in step for m in rank]  # noqa: E731
    assert flat(plan_epoch(LENGTHS, TRAINED, shape, 3, 0)) == flat(plan_epoch(LENGTHS, TRAINED, shape, 3, 0))
    assert flat(plan_epoch(LENGTHS, TRAINED, shape, 3, 0)) != flat(plan_epoch(LENGTHS, TRAINED, shape, 3, 1))


def padding_fraction(plan) -> float:
    real = padded = 0
    for step in plan:
        for rank in step:
            for m in rank:
                lens = LENGTHS[list(m.indices)]
                real += lens.sum()
                padded += lens.max() * len(lens)
    return 1 - real / padded


def test_grouping_by_length_cuts_padding():
    shape = BatchShape(16, 4, 1)
    grouped = padding_fraction(plan_epoch(LENGTHS, TRAINED, shape, 0, 0, group_by_length=True))
    random = padding_fraction(plan_epoch(LENGTHS, TRAINED, shape, 0, 0, group_by_length=False))
    assert grouped < 0.05 < random
