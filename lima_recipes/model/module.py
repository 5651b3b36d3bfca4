"""The LightningModule: masked next-token loss as a token mean over the global batch, AdamW with
LIMA's linear decay, and the per-step metrics (loss, padding, throughput)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from lima_recipes.data.tokenize import IGNORE_INDEX
from lima_recipes.errors import TrainingDivergedError


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of every trained next-token prediction, and how many there were.

    The labels move one position left rather than the logits one right: slicing the logits would
    copy the largest tensor of the step (batch x length x vocabulary) for every micro-batch."""
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, (targets != IGNORE_INDEX).sum()


def linear_schedule(step: int, total_steps: int, warmup_steps: int, final_ratio: float) -> float:
    """LR multiplier: optional linear warmup, then linear decay reaching final_ratio at the last step."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps - 1, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    return 1.0 - (1.0 - final_ratio) * progress


def is_norm_or_bias(name: str) -> bool:
    """By name, not shape: FSDP and ZeRO-3 flatten or empty parameters before the optimizer
    sees them, so `ndim` would put every weight in the no-decay group."""
    return name.endswith(".bias") or "norm" in name.rsplit(".", 2)[-2].lower()


def param_groups(model: torch.nn.Module, weight_decay: float, decay_norms_and_biases: bool) -> list[dict]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if is_norm_or_bias(name) and not decay_norms_and_biases else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


@dataclass(frozen=True)
class Placement:
    """What `configure_model` tells the model factory: the strategy's device mesh (None: every
    rank holds a full replica), the device this rank computes on, whether a checkpoint will
    overwrite the weights after setup (a resumed run need not read the pretrained ones), and
    DeepSpeed's config (ZeRO-3 builds inside its zero.Init)."""

    mesh: object = None
    device: torch.device = torch.device("cpu")
    resuming: bool = False
    deepspeed_config: dict | None = None


class CausalLMModule(L.LightningModule):
    """Receives a model factory (built in configure_model, so sharded strategies can build it
    per rank) and the optimizer settings; knows nothing about where the data came from."""

    STEP_STATS = 4
    """Length of the per-step stats vector (see _reset_step_stats)."""

    def __init__(self, model_factory: Callable[[Placement], torch.nn.Module], optim_cfg, total_steps: int,
                 seed: int = 0, cpu_adam: bool = False, padding_mask_in_attention: bool = False, resuming: bool = False):
        super().__init__()
        self.model_factory = model_factory
        self.optim_cfg = optim_cfg
        self.total_steps = total_steps
        self.seed = seed
        self.cpu_adam = cpu_adam
        """DeepSpeed's CPU Adam, required when ZeRO offloads the optimizer state."""
        self.padding_mask_in_attention = padding_mask_in_attention
        """See ModelConfig.padding_mask_in_attention: off, right padding needs no mask."""
        self.resuming = resuming
        """fit() will restore a checkpoint after setup, so the factory need not load weights."""
        self._micro_steps = 0
        self.model: torch.nn.Module | None = None
        self._reset_step_stats()
        self._val_sum = torch.zeros(())
        self._val_count = torch.zeros(())
        self._step_started = None

    def configure_model(self) -> None:
        if self.model is None:
            self.model = self.model_factory(self._placement())
            # from_pretrained returns a model in eval mode, and Lightning keeps the mode a module
            # arrives in: without this a pretrained model would train with every dropout off.
            self.model.train()
            if self._adapter_only:
                # checkpoints hold the adapters alone; the frozen base comes from model.path
                self.strict_loading = False

    @property
    def _adapter_only(self) -> bool:
        from lima_recipes.model.adapter import is_adapted

        return self.model is not None and is_adapted(self.model)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """An adapter run's checkpoint keeps only what trains (adapters, template token rows):
        megabytes for a 65B base, whose frozen weights the next run reads from model.path."""
        if self._adapter_only:
            from lima_recipes.model.adapter import trainable_state_dict

            checkpoint["state_dict"] = trainable_state_dict(self, checkpoint["state_dict"])

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self._adapter_only:
            from lima_recipes.model.adapter import trainable_state_dict

            expected = set(trainable_state_dict(self, dict.fromkeys(self.state_dict())))
            found = set(checkpoint["state_dict"])
            if found != expected:
                raise ValueError(f"the checkpoint does not hold this run's adapters ({len(found - expected)} unexpected tensors, "
                                 f"{len(expected - found)} missing, e.g. {sorted(found ^ expected)[:2]}); "
                                 "it was written by another adapter or model configuration")

    def _placement(self) -> Placement:
        trainer = self._trainer
        if trainer is None:
            return Placement()
        from lightning.pytorch.strategies import DeepSpeedStrategy

        strategy = trainer.strategy
        ds_config = strategy.config if isinstance(strategy, DeepSpeedStrategy) else None
        return Placement(self._device_mesh, strategy.root_device, self.resuming, ds_config)

    def _reset_step_stats(self) -> None:
        # loss share, trained tokens, real (non-pad) tokens, padded slots (objectives that log more
        # keep the loss first and the token counts last); summed on the device, so
        # that a step waits for the device once (in on_before_optimizer_step), not per micro-batch
        # (float32: exact for counts below 2**24 per step, and every device has it)
        self._step_stats = torch.zeros(self.STEP_STATS, dtype=torch.float32, device=self.device)

    def _check_right_padded(self, attention_mask: torch.Tensor) -> None:
        """Causal attention alone keeps real tokens from pads only when every pad comes after the
        real tokens of its row (the mask never rises again along a row)."""
        if not self.padding_mask_in_attention and bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
            raise ValueError("a batch is not padded on the right; set model.padding_mask_in_attention=true "
                             "to train with a left-padding collator")

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        # Checked on the host: reading a result from a GPU tensor would wait for the GPU.
        self._check_right_padded(batch["attention_mask"])
        return batch

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if not self.padding_mask_in_attention:
            if attention_mask.device.type == "cpu":  # a batch on a GPU was checked before it moved
                self._check_right_padded(attention_mask)
            attention_mask = None
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    def _seed_micro_batch(self) -> None:
        """Dropout masks differ across ranks and micro-batches, and depend only on (seed, step,
        micro-step, rank): a run resumed mid-epoch draws the masks the uninterrupted run drew."""
        rank = self._trainer.global_rank if self._trainer is not None else 0
        state = np.random.SeedSequence([self.seed, self.global_step, self._micro_steps, rank]).generate_state(2)
        seed = int(state[0]) << 32 | int(state[1])
        # Only the generator dropout on this device draws from: torch.manual_seed seeds every
        # device type there is, about 0.25 ms a call, paid on every micro-batch.
        if self.device.type == "cpu":
            torch.default_generator.manual_seed(seed)
        elif self.device.type == "cuda":
            torch.cuda.manual_seed(seed)  # the current device, which Lightning sets to this rank's
        else:
            torch.manual_seed(seed)

    def _gradient_accumulation_scale(self) -> int:
        """DeepSpeed divides by its accumulation steps inside backward, after Lightning already
        has; one extra factor undoes the second division."""
        trainer = self._trainer
        if trainer is not None and trainer.strategy.handles_gradient_accumulation:
            return trainer.accumulate_grad_batches
        return 1

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self._step_started is None:
            self._step_started = time.perf_counter()
        self._seed_micro_batch()
        self._micro_steps += 1
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss_sum, trained = token_loss_sum(logits, batch["labels"])
        # Integer tensors: bf16 precision plugins cast floating inputs, and a rounded token count
        # would scale each batch's loss by a different error.
        share = loss_sum / batch["global_trained_tokens"].float()
        mask = batch["attention_mask"]
        # torch.full, not torch.tensor: copying a host number to a GPU waits for the GPU
        slots = torch.full((), float(mask.numel()), device=share.device)
        micro = torch.stack([share.detach().float(), trained.float(), mask.sum().float(), slots])
        self._step_stats = self._step_stats.to(micro.device) + micro
        # Lightning divides by the accumulation steps and DDP averages over ranks; scaling back
        # leaves the gradient of the exact token mean over the global batch.
        return share * (batch["loss_scale"].float() * self._gradient_accumulation_scale())

    def on_before_optimizer_step(self, optimizer) -> None:
        if self._micro_steps < self.trainer.accumulate_grad_batches:
            return  # DeepSpeed calls this after every micro-batch; only the last one steps
        self._micro_steps = 0
        stats = self.trainer.strategy.reduce(self._step_stats.to(self.device), reduce_op="sum").tolist()
        loss, real, slots = stats[0], stats[-2], stats[-1]
        self._reset_step_stats()
        step = self.global_step + 1
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"train/loss is {loss} at optimizer step {step} (epoch {self.current_epoch + 1}); "
                "training stopped before the update"
            )
        elapsed = max(time.perf_counter() - (self._step_started or time.perf_counter()), 1e-9)
        self._step_started = None
        if self.global_step % self.trainer.log_every_n_steps == 0:
            # Straight to the loggers: the numbers are already reduced over ranks, and self.log
            # would register each metric anew every step (a deep copy per metric, about 1 ms each).
            metrics = {"train/loss": loss, **self._train_metrics(stats), "train/pad_fraction": 1.0 - real / max(slots, 1.0),
                       "train/tokens_per_sec": real / elapsed, "train/lr": optimizer.param_groups[0]["lr"],
                       "epoch": self.current_epoch}
            for logger in self.loggers:
                logger.log_metrics(metrics, step=self.global_step)
        self.log("loss", loss, on_step=True, on_epoch=False, prog_bar=True, logger=False)

    def _train_metrics(self, stats: list[float]) -> dict[str, float]:
        """What this objective logs beside the loss, from the step's summed stats
        (loss first, real tokens and padded slots last)."""
        return {"train/trained_tokens": stats[1]}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss_sum, trained = token_loss_sum(logits, batch["labels"])
        self._val_sum = self._val_sum.to(loss_sum.device) + loss_sum.detach()
        self._val_count = self._val_count.to(loss_sum.device) + trained

    def on_validation_epoch_end(self) -> None:
        totals = self.trainer.strategy.reduce(torch.stack([self._val_sum, self._val_count.float()]).to(self.device), reduce_op="sum")
        if totals[1] > 0:
            loss = totals[0] / totals[1]
            if not torch.isfinite(loss):
                # The train loss can stay finite a step longer than the weights do (normalised
                # activations); a non-finite dev loss means the model is already broken.
                raise TrainingDivergedError(f"val/loss is {float(loss)} after epoch {self.current_epoch + 1}; the weights have diverged")
            self.log("val/loss", loss, prog_bar=True, sync_dist=False)
        self._val_sum = torch.zeros(())
        self._val_count = torch.zeros(())

    def configure_optimizers(self):
        o = self.optim_cfg
        groups = param_groups(self.model, o.weight_decay, o.decay_norms_and_biases)
        if self.cpu_adam:
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            optimizer = DeepSpeedCPUAdam(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, adamw_mode=True)
        else:
            optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)
        # plain numbers: the schedule runs every step, and reading a config node costs far more
        total, warmup, final_ratio = int(self.total_steps), int(o.warmup_steps), float(o.final_lr / o.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: linear_schedule(step, total, warmup, final_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
