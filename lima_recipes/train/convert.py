"""`make convert`: any training checkpoint -> a Hugging Face directory, offline, in one process,
streaming one output file's tensors at a time (never the whole model, never the optimizer state).

Reads a sharded `last.ckpt` (torch.distributed.checkpoint, one file per rank: FSDP2), a DeepSpeed
ZeRO checkpoint directory, or a single-file Lightning checkpoint (one process, DDP). The config,
tokenizer and generation config come from an HF directory of the same run (`like`: by default
the run's export/ or newest kept epoch), so the result is as complete as an export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from lima_recipes.errors import ConfigError, WeightsNotFoundError
from lima_recipes.model.hf_files import DEFAULT_SHARD_BYTES, write_shards

MODULE_PREFIX = "model."
"""The LightningModule holds the transformers model as `self.model`."""
DCP_PREFIX = "state_dict." + MODULE_PREFIX
"""Lightning's sharded checkpoints nest the module's state dict under `state_dict`."""
WEIGHT_FILES = ("*.safetensors", "*.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def checkpoint_kind(path: Path) -> str:
    if path.is_file():
        return "lightning"
    if (path / ".metadata").is_file():
        return "dcp"
    if (path / "latest").is_file() or any(path.glob("*/mp_rank_*_model_states.pt")):
        return "deepspeed"
    raise WeightsNotFoundError(f"ckpt={path}: not a checkpoint (a Lightning .ckpt file, a sharded last.ckpt/ with "
                               ".metadata, or a DeepSpeed directory)")


def convert_dcp(ckpt: Path, out_dir: Path, dtype: torch.dtype, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> list[str]:
    """Model tensors of a sharded checkpoint, read a file's worth at a time with `no_dist`."""
    import torch.distributed.checkpoint as dcp

    reader = dcp.FileSystemReader(str(ckpt))
    entries = reader.read_metadata().state_dict_metadata
    names = {key[len(DCP_PREFIX):]: key for key in entries if key.startswith(DCP_PREFIX) and hasattr(entries[key], "size")}
    if not names:
        raise WeightsNotFoundError(f"ckpt={ckpt}: no model weights under {DCP_PREFIX!r}")
    width = torch.empty((), dtype=dtype).element_size()
    sizes = {name: entries[key].size.numel() * width for name, key in names.items()}

    def read(group: list[str]) -> dict[str, torch.Tensor]:
        state = {names[n]: torch.empty(entries[names[n]].size, dtype=entries[names[n]].properties.dtype) for n in group}
        dcp.load(state, storage_reader=reader, no_dist=True)
        return {n: state[names[n]].to(dtype) for n in group}

    return write_shards(names, sizes, read, out_dir, max_shard_bytes)


def convert_lightning_file(ckpt: Path, out_dir: Path, dtype: torch.dtype, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> list[str]:
    state = torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)["state_dict"]
    adapters = [key for key in state if ".lora_" in key or ".trainable_tokens_" in key]
    if adapters:
        raise ConfigError(f"ckpt={ckpt}: an adapter run's checkpoint holds its {len(state)} trained tensors only, not the "
                          "base weights; the merged model is in the run's export/ and checkpoints/epoch=NN/ directories")
    names = {key[len(MODULE_PREFIX):]: key for key in state if key.startswith(MODULE_PREFIX)}
    width = torch.empty((), dtype=dtype).element_size()
    sizes = {name: state[key].numel() * width for name, key in names.items()}
    return write_shards(names, sizes, lambda group: {n: state[names[n]].to(dtype) for n in group}, out_dir, max_shard_bytes)


def default_like(ckpt: Path) -> Path | None:
    """An HF directory of the same run: its export, else its newest kept epoch."""
    from lima_recipes.train.callbacks import EpochCheckpoint

    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    candidates = [run_dir / "export", *reversed(EpochCheckpoint(run_dir / "checkpoints", []).kept())]
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def convert_checkpoint(ckpt: str | Path, out: str | Path, dtype: torch.dtype, like: str | Path | None = None,
                       max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> Path:
    from lima_recipes.model.export import METADATA
    from lima_recipes.train.hf_checkpoint import convert_zero_checkpoint, replace_dir

    ckpt, out = Path(ckpt), Path(out)
    if not ckpt.exists():
        raise WeightsNotFoundError(f"ckpt={ckpt}: no such file or directory")
    kind = checkpoint_kind(ckpt)
    like = Path(like) if like else default_like(ckpt)
    if like is None or not (like / "config.json").is_file():
        raise ConfigError(f"like={like}: needs an HF directory of the same run (config.json, tokenizer) to copy the "
                          "non-weight files from; pass like=<run>/export or like=<run>/checkpoints/epoch=NN")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(like, staging, ignore=shutil.ignore_patterns(*WEIGHT_FILES))
    if kind == "dcp":
        convert_dcp(ckpt, staging, dtype, max_shard_bytes)
    elif kind == "deepspeed":
        convert_zero_checkpoint(ckpt, staging, dtype, prefix="_forward_module." + MODULE_PREFIX, max_shard_bytes=max_shard_bytes)
    else:
        convert_lightning_file(ckpt, staging, dtype, max_shard_bytes)
    _record_dtype(staging, dtype)
    # the copied record (epoch, selection) describes `like`, not these weights
    (staging / METADATA).write_text(json.dumps({"converted_from": str(ckpt.resolve()), "kind": kind,
                                                "dtype": str(dtype).removeprefix("torch."), "files_from": str(like)}, indent=2))
    replace_dir(staging, out)
    return out


def _record_dtype(model_dir: Path, dtype: torch.dtype) -> None:
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    config["dtype"] = str(dtype).removeprefix("torch.")
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
