"""DPO as a LightningModule beside the SFT one: the same model factory, strategies, checkpoints,
resume and export; only the loss, the metrics and the reference pass differ.

Each micro-batch holds B pairs as 2B rows ([chosen; rejected], one forward pass). The loss is the
mean over the pairs of the global batch (plus, with stage.sft_weight, the token mean of the
chosen answers' negative log-likelihood over the global batch), so gradient accumulation and the
number of ranks change nothing, as for SFT. The reference log-probabilities come from the policy
itself before its first update, computed in one no-grad pass and cached on disk (train/reference.py).
"""

from __future__ import annotations

import logging
import time

import torch

from lima_recipes.errors import ConfigError, TrainingDivergedError
from lima_recipes.model.module import CausalLMModule
from lima_recipes.model.preference_loss import preference_loss, sequence_logps

log = logging.getLogger(__name__)


class PreferenceModule(CausalLMModule):
    STEP_STATS = 9
    """loss share, pairs, chosen and rejected reward sums, accuracy sum, chosen and rejected
    log-probability sums, real tokens, padded slots."""

    def __init__(self, model_factory, optim_cfg, total_steps: int, stage_cfg, references: dict, **kwargs):
        super().__init__(model_factory, optim_cfg, total_steps, **kwargs)
        self.loss_type, self.beta, self.sft_weight = str(stage_cfg.loss), float(stage_cfg.beta), float(stage_cfg.sft_weight)
        self.references = references
        """split ("train", "dev") -> ReferenceStore."""
        self._reference: dict[str, torch.Tensor] = {}
        self._val_stats = torch.zeros(4)

    # ---- the reference pass ----------------------------------------------------------------

    def on_fit_start(self) -> None:
        self._ensure_reference()

    def on_validation_start(self) -> None:
        self._ensure_reference()

    def _ensure_reference(self) -> None:
        """Every split's table, read from its cache file or computed now from the starting weights."""
        for split, store in self.references.items():
            if split in self._reference:
                continue
            table = store.load()
            if table is None:
                if self.resuming:
                    raise ConfigError(f"{store.path}: the reference log-probabilities of {store.description} are gone, and this "
                                      "resumed run no longer has the starting weights to recompute them; restore the file, "
                                      "or delete the run directory to train again")
                table = self._compute_reference(split, store.num_pairs)
                if self.trainer.is_global_zero:
                    store.save(table)
                self.trainer.strategy.barrier()
                log.info("reference log-probabilities of %d pairs (%s) written to %s", store.num_pairs, store.description, store.path)
            else:
                log.info("reference log-probabilities of %s read from %s", store.description, store.path)
            self._reference[split] = table.to(self.device, torch.float32)

    @torch.no_grad()
    def _compute_reference(self, split: str, num_pairs: int) -> torch.Tensor:
        """One pass over a split with dropout off, each rank on its share of the pairs, summed
        over ranks: every rank ends with the whole (pairs, 2) table."""
        table = torch.zeros(num_pairs, 2, dtype=torch.float64, device=self.device)
        trainer = self.trainer
        was_training = self.model.training
        self.model.eval()
        try:
            for batch in trainer.datamodule.reference_dataloader(split):
                batch = trainer.strategy.batch_to_device(batch)
                with trainer.precision_plugin.forward_context():
                    chosen, rejected, _, _ = self._pair_logps(batch)
                keep = batch["pair_weight"] > 0
                index = batch["pair_index"][keep]
                table[index, 0] = chosen[keep].double()
                table[index, 1] = rejected[keep].double()
        finally:
            self.model.train(was_training)
        return trainer.strategy.reduce(table, reduce_op="sum")

    # ---- the loss --------------------------------------------------------------------------

    def _pair_logps(self, batch: dict):
        logps, tokens = sequence_logps(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        pairs = batch["pair_index"].numel()
        return logps[:pairs], logps[pairs:], tokens[:pairs], tokens[pairs:]

    def _terms(self, batch: dict, split: str):
        chosen, rejected, chosen_tokens, rejected_tokens = self._pair_logps(batch)
        reference = self._reference[split][batch["pair_index"]]
        terms = preference_loss(chosen, rejected, reference[:, 0], reference[:, 1], chosen_tokens, rejected_tokens,
                                self.loss_type, self.beta)
        return terms, chosen, rejected, batch["pair_weight"].to(chosen.dtype)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self._step_started is None:
            self._step_started = time.perf_counter()
        self._seed_micro_batch()
        self._micro_steps += 1
        terms, chosen, rejected, weight = self._terms(batch, "train")
        share = (terms.loss * weight).sum() / batch["global_pairs"].float()
        if self.sft_weight:
            # RPO: the chosen answers' NLL as a token mean over the global batch (filler rows are masked)
            share = share + self.sft_weight * -(chosen * weight).sum() / batch["global_trained_tokens"].float()
        mask = batch["attention_mask"]
        slots = torch.full((), float(mask.numel()), device=share.device)
        micro = torch.stack([share.detach().float(), weight.sum(), (terms.chosen_rewards * weight).sum(),
                             (terms.rejected_rewards * weight).sum(), ((terms.chosen_rewards > terms.rejected_rewards) * weight).sum(),
                             (chosen.detach() * weight).sum(), (rejected.detach() * weight).sum(), mask.sum().float(), slots])
        self._step_stats = self._step_stats.to(micro.device) + micro
        return share * (batch["loss_scale"].float() * self._gradient_accumulation_scale())

    def _train_metrics(self, stats: list[float]) -> dict[str, float]:
        pairs = max(stats[1], 1.0)
        chosen, rejected = stats[2] / pairs, stats[3] / pairs
        # TRL's names, so W&B panels of the two line up
        return {"train/rewards/chosen": chosen, "train/rewards/rejected": rejected, "train/rewards/margins": chosen - rejected,
                "train/rewards/accuracies": stats[4] / pairs, "train/logps/chosen": stats[5] / pairs,
                "train/logps/rejected": stats[6] / pairs, "train/pairs": stats[1]}

    # ---- dev pairs -------------------------------------------------------------------------

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        terms, _, _, weight = self._terms(batch, "dev")
        margins = terms.chosen_rewards - terms.rejected_rewards
        micro = torch.stack([(terms.loss * weight).sum(), weight.sum(), ((margins > 0) * weight).sum(), (margins * weight).sum()])
        self._val_stats = self._val_stats.to(micro.device) + micro.detach().float()

    def on_validation_epoch_end(self) -> None:
        loss_sum, pairs, correct, margins = self.trainer.strategy.reduce(self._val_stats.to(self.device), reduce_op="sum").tolist()
        self._val_stats = torch.zeros(4)
        if pairs > 0:
            loss = loss_sum / pairs
            if loss != loss or abs(loss) == float("inf"):
                raise TrainingDivergedError(f"val/loss is {loss} after epoch {self.current_epoch + 1}; the weights have diverged")
            self.log("val/loss", loss, prog_bar=True, sync_dist=False)
            self.log("val/rewards/accuracies", correct / pairs, sync_dist=False)
            self.log("val/rewards/margins", margins / pairs, sync_dist=False)
