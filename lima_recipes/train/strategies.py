"""The strategy group -> a Lightning strategy object (DDP, FSDP2, DeepSpeed ZeRO) and its precision."""

from __future__ import annotations

from datetime import timedelta

from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, ModelParallelStrategy, Strategy


def build_strategy(strategy_cfg, micro_batch_size: int = 1, world_size: int = 1) -> Strategy | str:
    kind = strategy_cfg.kind
    timeout = timedelta(minutes=strategy_cfg.timeout_minutes)
    if kind == "auto":
        return "auto"
    if kind == "ddp":
        return DDPStrategy(
            process_group_backend=strategy_cfg.process_group_backend,
            find_unused_parameters=strategy_cfg.find_unused_parameters,
            timeout=timeout,
        )
    if kind == "fsdp":
        # FSDP2 (fully_shard) is applied by the model factory in configure_model; Lightning
        # supplies the processes, the mesh and sharded (one file per rank) checkpoints.
        return ModelParallelStrategy(
            data_parallel_size=world_size,
            tensor_parallel_size=1,
            save_distributed_checkpoint=True,
            process_group_backend=strategy_cfg.process_group_backend,
            timeout=timeout,
        )
    if kind == "deepspeed":
        offload = strategy_cfg.cpu_offload
        strategy = DeepSpeedStrategy(
            stage=strategy_cfg.zero_stage,
            offload_optimizer=offload,
            offload_parameters=offload and strategy_cfg.zero_stage == 3,
            process_group_backend=strategy_cfg.process_group_backend,
            timeout=timeout,
            # Lightning would read this from the DataLoader's batch_sampler, which our loaders
            # (whole micro-batches from a sampler) do not have.
            logging_batch_size_per_gpu=micro_batch_size,
        )
        return strategy
    raise ValueError(f"unknown strategy.kind {kind!r}")


def lightning_precision(strategy_cfg) -> str:
    """The Trainer's precision. FSDP2 mixes precision itself (fp32 shards, bf16 compute, fp32
    gradient reduction, see sharded.shard); Lightning's autocast on top would only add casts."""
    if strategy_cfg.kind == "fsdp" and strategy_cfg.precision in ("bf16-mixed", "16-mixed"):
        return "32-true"
    return strategy_cfg.precision


def keeps_fp32_master_weights(strategy_cfg) -> bool:
    """Whether the module's own parameters must be float32: everything but DeepSpeed (which keeps
    fp32 master partitions in its optimizer) and `*-true` half precision. Without this, a
    checkpoint loaded in bf16 would be trained in pure bf16, where most lr-1e-6 updates round away."""
    return strategy_cfg.kind != "deepspeed" and strategy_cfg.precision in ("32-true", "bf16-mixed", "16-mixed")


def uses_cpu_adam(strategy_cfg) -> bool:
    """ZeRO with optimizer offload refuses torch's AdamW; DeepSpeed's CPU Adam is the same update."""
    return strategy_cfg.kind == "deepspeed" and strategy_cfg.cpu_offload


def is_sharded(strategy_cfg) -> bool:
    """FSDP2: the model factory builds, shards and loads the model itself (train/sharded.py)."""
    return strategy_cfg.kind == "fsdp"


def cluster_plugins(environ: dict | None = None) -> list:
    """Under submitit (hydra/launcher=submitit_slurm), submitit owns requeueing on preemption and
    time-outs: Lightning's own SLURM requeue (SIGUSR1 + `scontrol requeue`) is turned off, or a job
    can be requeued twice. Under a plain `sbatch` + `srun`, Lightning's SLURM environment (found
    on its own) saves and requeues with `#SBATCH --signal=USR1@120`."""
    import os

    environ = os.environ if environ is None else environ
    if environ.get("SUBMITIT_EXECUTOR") == "slurm":
        from lightning.pytorch.plugins.environments import SLURMEnvironment

        return [SLURMEnvironment(auto_requeue=False)]
    return []
