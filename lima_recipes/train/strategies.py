"""The strategy group -> a Lightning strategy object (DDP, FSDP per decoder layer, DeepSpeed ZeRO)."""

from __future__ import annotations

from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, Strategy
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

DECODER_LAYER = LlamaDecoderLayer
"""The unit FSDP wraps and checkpoints: one shard gather and one recomputation per layer."""


def build_strategy(strategy_cfg) -> Strategy | str:
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
        return DeepSpeedStrategy(
            stage=strategy_cfg.zero_stage,
            offload_optimizer=offload,
            offload_parameters=offload and strategy_cfg.zero_stage == 3,
            process_group_backend=strategy_cfg.process_group_backend,
        )
    raise ValueError(f"unknown strategy.kind {kind!r}")


def uses_hf_checkpointing(strategy_cfg) -> bool:
    """FSDP checkpoints through Lightning's policy; every other strategy through transformers."""
    return strategy_cfg.activation_checkpointing and strategy_cfg.kind != "fsdp"
