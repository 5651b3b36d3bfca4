"""Global-batch planning: which examples form each optimizer step, on which rank and micro-step.

The plan for a whole epoch is computed identically on every rank from (seed, epoch), so each
micro-batch can carry the number of trained tokens in its entire global batch. Dividing the
summed token loss by that number makes the loss the token mean over the global batch, whatever
the split into micro-batches, accumulation steps and ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lima_recipes.data.tokenize import IGNORE_INDEX


@dataclass(frozen=True)
class MicroBatch:
    indices: tuple[int, ...]
    """Examples in this micro-batch."""
    global_trained_tokens: int
    """Trained tokens in the whole global batch this micro-batch belongs to (all ranks)."""
    filler: bool = False
    """A stand-in that keeps every rank stepping in lockstep; its labels are all masked."""
    global_examples: int = 0
    """Examples (not fillers) in the whole global batch: DPO's loss is a mean over pairs."""


@dataclass(frozen=True)
class BatchShape:
    global_batch_size: int
    micro_batch_size: int
    world_size: int = 1

    @property
    def accumulation(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.world_size)

    def steps_per_epoch(self, num_examples: int) -> int:
        return math.ceil(num_examples / self.global_batch_size)


def _global_batches(lengths: np.ndarray, shape: BatchShape, seed: int, epoch: int, shuffle: bool,
                    group_by_length: bool, megabatch_factor: int) -> list[np.ndarray]:
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    g = shape.global_batch_size
    if group_by_length:
        # Sort inside pools of several global batches, so each global batch holds examples of
        # similar length; pools keep the epoch's order random at the scale of the pool.
        pool = g * megabatch_factor
        order = np.concatenate([
            chunk[np.argsort(-lengths[chunk], kind="stable")] for chunk in np.array_split(order, max(1, math.ceil(n / pool)))
        ]) if n else order
    batches = [order[i : i + g] for i in range(0, n, g)]
    if shuffle and group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def plan_epoch(lengths: np.ndarray, trained: np.ndarray, shape: BatchShape, seed: int, epoch: int,
               shuffle: bool = True, group_by_length: bool = True, megabatch_factor: int = 16) -> list[list[list[MicroBatch]]]:
    """plan[step][rank][micro_step] for one epoch.

    Inside a global batch the examples are sorted by length and cut into consecutive
    micro-batches, which is where padding is saved. A short last global batch is spread evenly;
    slots it cannot fill get a masked filler so every rank runs the same number of micro-steps.
    """
    slots = shape.world_size * shape.accumulation
    plan = []
    for batch in _global_batches(lengths, shape, seed, epoch, shuffle, group_by_length, megabatch_factor):
        batch = batch[np.argsort(-lengths[batch], kind="stable")]
        total = int(trained[batch].sum())
        sizes = [len(batch) // slots + (k < len(batch) % slots) for k in range(slots)]
        micro, start = [], 0
        for size in sizes:
            if size:
                micro.append(MicroBatch(tuple(int(i) for i in batch[start : start + size]), total, global_examples=len(batch)))
            else:
                micro.append(MicroBatch((int(batch[-1]),), total, filler=True, global_examples=len(batch)))
            start += size
        # slot k -> rank k % world, micro-step k // world: ranks get equally long work
        plan.append([[micro[a * shape.world_size + r] for a in range(shape.accumulation)] for r in range(shape.world_size)])
    return plan


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's MicroBatch objects, accumulation steps in order, step after step."""

    def __init__(self, lengths: np.ndarray, trained: np.ndarray, shape: BatchShape, rank: int, seed: int,
                 shuffle: bool = True, group_by_length: bool = True, megabatch_factor: int = 16):
        self.lengths, self.trained, self.shape, self.rank = lengths, trained, shape, rank
        self.seed, self.shuffle, self.group_by_length, self.megabatch_factor = seed, shuffle, group_by_length, megabatch_factor
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, steps_done: int) -> None:
        """The next pass over `epoch` starts after its first `steps_done` optimizer steps."""
        self._resume = (epoch, steps_done)

    def __len__(self) -> int:
        return self.shape.steps_per_epoch(len(self.lengths)) * self.shape.accumulation

    def __iter__(self):
        plan = plan_epoch(self.lengths, self.trained, self.shape, self.seed, self.epoch,
                          self.shuffle, self.group_by_length, self.megabatch_factor)
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip, self._resume = self._resume[1], None
        for step in plan[skip:]:
            yield from step[self.rank]


class MicroBatchDataset(torch.utils.data.Dataset):
    """Turns a MicroBatch into padded tensors; indexed by MicroBatch, not by example. `collate_fn`
    is `collate` for SFT conversations, `collate_pairs` for preference pairs."""

    def __init__(self, tokenized, pad_token_id: int, pad_to_multiple_of: int = 8, accumulation: int = 1, world_size: int = 1,
                 collate_fn=None):
        self.tokenized = tokenized
        self.collate_fn = collate_fn or collate
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of
        self.accumulation = accumulation
        self.world_size = world_size

    def __len__(self) -> int:
        return len(self.tokenized)

    def __getitem__(self, micro: MicroBatch) -> dict[str, torch.Tensor]:
        return self.collate_fn(self.tokenized, micro, self.pad_token_id, self.multiple, self.accumulation, self.world_size)


def collate(tokenized, micro: MicroBatch, pad_token_id: int, multiple: int = 8, accumulation: int = 1,
            world_size: int = 1) -> dict[str, torch.Tensor]:
    rows = [tokenized.input_ids[i] for i in micro.indices]
    width = max(len(r) for r in rows)
    width = int(math.ceil(width / multiple) * multiple)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, i in enumerate(micro.indices):
        n = len(tokenized.input_ids[i])
        input_ids[j, :n] = torch.from_numpy(tokenized.input_ids[i].astype(np.int64))
        attention_mask[j, :n] = 1
        if not micro.filler:
            labels[j, :n] = torch.from_numpy(tokenized.labels[i].astype(np.int64))
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "global_trained_tokens": torch.tensor(max(micro.global_trained_tokens, 1), dtype=torch.long),
        "loss_scale": torch.tensor(accumulation * world_size, dtype=torch.long),
    }
