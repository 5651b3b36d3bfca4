"""The strategy group -> a Lightning strategy object (DDP, FSDP per decoder layer, DeepSpeed ZeRO)."""

from __future__ import annotations

from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, Strategy
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

DECODER_LAYER = LlamaDecoderLayer
"""The unit FSDP wraps and checkpoints: one shard gather and one recomputation per layer."""


def build_strategy(strategy_cfg, micro_batch_size: int = 1) -> Strategy | str:
    kind = strategy_cfg.kind
    if kind == "auto":
        return "auto"
    if kind == "ddp":
        return DDPStrategy(
            process_group_backend=strategy_cfg.process_group_backend,
            find_unused_parameters=strategy_cfg.find_unused_parameters,
        )
    if kind == "fsdp":
        return FSDPStrategy(
            auto_wrap_policy={DECODER_LAYER},
            activation_checkpointing_policy={DECODER_LAYER} if strategy_cfg.activation_checkpointing else None,
            sharding_strategy=strategy_cfg.sharding_strategy,
            cpu_offload=strategy_cfg.cpu_offload,
            state_dict_type="full",
            process_group_backend=strategy_cfg.process_group_backend,
        )
    if kind == "deepspeed":
        offload = strategy_cfg.cpu_offload
        strategy = DeepSpeedStrategy(
            stage=strategy_cfg.zero_stage,
            offload_optimizer=offload,
            offload_parameters=offload and strategy_cfg.zero_stage == 3,
            process_group_backend=strategy_cfg.process_group_backend,
            # Lightning would read this from the DataLoader's batch_sampler, which our loaders
            # (whole micro-batches from a sampler) do not have.
            logging_batch_size_per_gpu=micro_batch_size,
        )
        return strategy
    raise ValueError(f"unknown strategy.kind {kind!r}")


def keeps_fp32_master_weights(strategy_cfg) -> bool:
    """Whether the module's own parameters must be float32: everything but DeepSpeed (which keeps
    fp32 master partitions in its optimizer) and `*-true` half precision. Without this, a
    checkpoint loaded in bf16 would be trained in pure bf16, where most lr-1e-6 updates round away."""
    return strategy_cfg.kind != "deepspeed" and strategy_cfg.precision in ("32-true", "bf16-mixed", "16-mixed")


def uses_cpu_adam(strategy_cfg) -> bool:
    """ZeRO with optimizer offload refuses torch's AdamW; DeepSpeed's CPU Adam is the same update."""
    return strategy_cfg.kind == "deepspeed" and strategy_cfg.cpu_offload


def uses_hf_checkpointing(strategy_cfg) -> bool:
    """FSDP checkpoints through Lightning's policy; every other strategy through transformers."""
    return strategy_cfg.activation_checkpointing and strategy_cfg.kind != "fsdp"
