"""Lightning wiring of the tokenized sets: one sampler per rank over a shared global-batch plan."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch.utils.data import DataLoader

from lima_recipes.data.batching import BatchShape, GlobalBatchSampler, MicroBatchDataset
from lima_recipes.data.dataset import TokenizedSet


class ResumableLoader(DataLoader):
    """A training loader Lightning saves in every checkpoint and restores on resume.

    The batch plan is a pure function of (seed, epoch), so the position is just (epoch, optimizer
    steps done in it), read from the trainer: a run stopped mid-epoch resumes with the next
    micro-batch it had not trained on, not at the start of the epoch.
    """

    def __init__(self, *args, position: Callable[[], tuple[int, int]], **kwargs):
        super().__init__(*args, **kwargs)
        self._position = position

    def state_dict(self) -> dict:
        epoch, steps_done = self._position()
        return {"epoch": epoch, "steps_done": steps_done}

    def load_state_dict(self, state: dict) -> None:
        # Lightning creates the iterator before it sets the sampler's epoch; with worker
        # processes the first micro-batches are drawn right then, so the epoch is set here too.
        self.sampler.set_epoch(state["epoch"])
        self.sampler.resume_at(state["epoch"], state["steps_done"])


class LimaDataModule(L.LightningDataModule):
    def __init__(self, train: TokenizedSet, dev: TokenizedSet | None, shape: BatchShape, pad_token_id: int,
                 seed: int, group_by_length: bool = True, megabatch_factor: int = 16,
                 pad_to_multiple_of: int = 8, num_workers: int = 0, collate_fn=None):
        super().__init__()
        self.collate_fn = collate_fn
        self.train_set, self.dev_set, self.shape = train, dev, shape
        self.pad_token_id, self.seed = pad_token_id, seed
        self.group_by_length, self.megabatch_factor = group_by_length, megabatch_factor
        self.pad_to_multiple_of, self.num_workers = pad_to_multiple_of, num_workers

    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def _loader(self, tokenized: TokenizedSet, shape: BatchShape, shuffle: bool) -> DataLoader:
        sampler = GlobalBatchSampler(
            tokenized.lengths, tokenized.trained_tokens, shape, rank=self._rank(), seed=self.seed,
            shuffle=shuffle, group_by_length=self.group_by_length if shuffle else True,
            megabatch_factor=self.megabatch_factor,
        )
        dataset = MicroBatchDataset(tokenized, self.pad_token_id, self.pad_to_multiple_of, shape.accumulation, shape.world_size,
                                    self.collate_fn)
        # batch_size=None: the sampler yields whole micro-batches and the dataset pads them.
        options = dict(sampler=sampler, batch_size=None, num_workers=self.num_workers, persistent_workers=self.num_workers > 0)
        if shuffle:
            # The epoch a resumed run continues with (0 on a fresh run), set before Lightning
            # creates the first iterator, for the same reason as in load_state_dict.
            sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed if self.trainer is not None else 0)
            return ResumableLoader(dataset, position=self._position, **options)
        return DataLoader(dataset, **options)

    def _position(self) -> tuple[int, int]:
        """(epoch, optimizer steps done in it); every epoch has the same number of steps."""
        epoch = self.trainer.current_epoch
        return epoch, self.trainer.global_step - epoch * self.shape.steps_per_epoch(len(self.train_set))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.shape, shuffle=True)

    def _in_order(self, tokenized) -> DataLoader:
        """Every example once, sorted by length, each rank on its share: one "global batch" per rank-step."""
        eval_shape = BatchShape(self.shape.micro_batch_size * self.shape.world_size, self.shape.micro_batch_size, self.shape.world_size)
        return self._loader(tokenized, eval_shape, shuffle=False)

    def val_dataloader(self) -> DataLoader | list:
        if self.dev_set is None or len(self.dev_set) == 0:
            return []
        # Dev loss is a token mean over the whole dev set
        return self._in_order(self.dev_set)

    def reference_dataloader(self, split: str) -> DataLoader:
        """DPO's reference pass over the train or dev pairs."""
        return self._in_order(self.train_set if split == "train" else self.dev_set)
