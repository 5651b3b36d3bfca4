"""Kept epochs and the export as complete Hugging Face directories, written by the ranks that hold
the weights: plain `from_pretrained` (and `make generate`, `dev_select`, vLLM) reads them as they are.

An FSDP2 model is never gathered: every rank writes its own slices (`HuggingFaceStorageWriter`,
`save_distributed`), then the ranks share out the final files and each stitches its files from
the slices (`consolidate_safetensors_files_on_every_rank`), so no rank holds more than its shard
and one tensor. This needs the run directory on a filesystem every node sees. A model held whole
(one process, DDP) is written by rank 0. Every directory is written beside its final name and
renamed, so an interrupted save leaves the previous complete one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from lima_recipes.model.export import write_model_files
from lima_recipes.model.hf_files import DEFAULT_SHARD_BYTES, plan_shards, write_shards

SLICES = ".slices"
"""Per-rank slices inside a directory being written; removed once the files are stitched."""


def is_sharded_model(model: torch.nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def write_sharded_weights(model: torch.nn.Module, out_dir: Path, dtype: torch.dtype,
                          max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
    """Collective: every rank writes its slices in `dtype`, then stitches its share of the files."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter
    from torch.distributed.checkpoint._consolidate_hf_safetensors import consolidate_safetensors_files_on_every_rank
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model)
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # from_pretrained ties it back, as save_pretrained leaves it out
    state = {name: tensor.detach().to(dtype) for name, tensor in state.items()}
    files = plan_shards({name: t.numel() * t.element_size() for name, t in state.items()}, max_shard_bytes)
    slices = out_dir / SLICES
    dcp.save(state, storage_writer=HuggingFaceStorageWriter(str(slices), fqn_to_index_mapping=files, save_distributed=True))
    del state
    consolidate_safetensors_files_on_every_rank(str(slices), str(out_dir), files)  # ends with a barrier
    if dist.get_rank() == 0:
        shutil.rmtree(slices)


def write_full_weights(model: torch.nn.Module, out_dir: Path, dtype: torch.dtype, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
    """Rank 0 of a model every rank holds whole; an adapted model is written with its adapters
    merged into the base weights, as the plain model every tool loads."""
    from lima_recipes.model.adapter import is_adapted, merged_state_dict

    if is_adapted(model):
        state, model = merged_state_dict(model), model.base_model.model
    else:
        state = model.state_dict()
    state = {name: tensor.detach().to(dtype) for name, tensor in state.items()}
    model.save_pretrained(out_dir, state_dict=state, max_shard_size=max_shard_bytes)


def write_zero_weights(trainer, out_dir: Path, dtype: torch.dtype) -> None:
    """DeepSpeed: ZeRO partitions live in DeepSpeed's own checkpoint; every rank writes its part,
    then rank 0 converts it (collective save, rank-0 conversion)."""
    scratch = out_dir / ".zero"
    trainer.save_checkpoint(scratch, weights_only=True)
    if trainer.is_global_zero:
        convert_zero_checkpoint(scratch, out_dir, dtype, prefix="_forward_module.model.")
        shutil.rmtree(scratch)


def convert_zero_checkpoint(zero_dir: Path, out_dir: Path, dtype: torch.dtype, prefix: str = "",
                            max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> list[str]:
    """A ZeRO-2/3 checkpoint directory -> HF safetensors shards in `dtype`, one file's tensors
    merged from the partitions at a time (DeepSpeed's lazy reader). `prefix` is what wraps the
    transformers names (Lightning: `_forward_module.` + the module's attribute)."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    lazy = get_fp32_state_dict_from_zero_checkpoint(str(zero_dir), lazy_mode=True)
    names = {key[len(prefix):] if key.startswith(prefix) else key: key for key in lazy}
    width = torch.empty((), dtype=dtype).element_size()
    sizes = {name: lazy[key].shape.numel() * width for name, key in names.items()}
    return write_shards(names, sizes, lambda group: {n: lazy[names[n]].contiguous().to(dtype) for n in group}, out_dir,
                        max_shard_bytes)


def save_hf_model(trainer, model: torch.nn.Module, path: Path, dtype: torch.dtype,
                  write_files: Callable[[Path], None]) -> Path:
    """Called on every rank. Weights into `<path>.partial`, then rank 0 adds the rest
    (`write_files`: config, tokenizer, generation config) and renames it to `path`."""
    strategy = trainer.strategy
    path = Path(strategy.broadcast(str(path)))
    staging = path.with_name(path.name + ".partial")
    if trainer.is_global_zero:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    strategy.barrier()
    from lightning.pytorch.strategies import DeepSpeedStrategy

    if is_sharded_model(model):
        write_sharded_weights(model, staging, dtype)
    elif isinstance(strategy, DeepSpeedStrategy):
        write_zero_weights(trainer, staging, dtype)
    elif trainer.is_global_zero:
        write_full_weights(model, staging, dtype)
    if trainer.is_global_zero:
        write_files(staging)
        replace_dir(staging, path)
    strategy.barrier()
    return path


def replace_dir(staging: Path, path: Path) -> None:
    """Swap a finished directory in: the old one is retired first, then removed."""
    retired = path.with_name(path.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    if path.exists():
        path.rename(retired)
    staging.rename(path)
    shutil.rmtree(retired, ignore_errors=True)


def model_files_writer(model: torch.nn.Module, dtype: torch.dtype, tokenizer, eot_token: str, generation_cfg,
                       metadata: dict | None = None) -> Callable[[Path], None]:
    return lambda out_dir: write_model_files(out_dir, model.config, dtype, tokenizer, eot_token, generation_cfg, metadata)
