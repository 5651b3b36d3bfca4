"""Hugging Face weight files: read a checkpoint directory tensor by tensor, and write tensors as
safetensors shards with an index, a few at a time.

Neither side ever holds a whole model: reads are memory-mapped per tensor, and writes take
tensors from a callable per name, so the offline converters stay within one shard of RAM.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from lima_recipes.errors import WeightsNotFoundError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
DEFAULT_SHARD_BYTES = 5 * 1024**3
"""Files of at most 5 GB, as `save_pretrained` writes them: a 65B model in bf16 is 27 files."""


class SafetensorsDir:
    """The `*.safetensors` files of a checkpoint directory, keyed by tensor name."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index = self.directory / INDEX
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
        elif (self.directory / SINGLE).is_file():
            weight_map = None
        else:
            found = sorted(p.name for p in self.directory.glob("*.bin"))
            hint = (f"it holds PyTorch .bin files ({found[0]}...); convert them once with "
                    "`AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir)`") if found else "it holds none"
            raise WeightsNotFoundError(f"{self.directory}: sharded loading reads *.safetensors and {hint}")
        if weight_map is None:
            from safetensors import safe_open

            with safe_open(str(self.directory / SINGLE), framework="pt") as handle:
                weight_map = dict.fromkeys(handle.keys(), SINGLE)
        self.weight_map: dict[str, str] = weight_map
        self._handles: dict[str, object] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.weight_map

    def get(self, name: str) -> torch.Tensor:
        """One tensor, read from its memory-mapped file (only its own pages are touched)."""
        from safetensors import safe_open

        file = self.weight_map[name]
        if file not in self._handles:
            self._handles[file] = safe_open(str(self.directory / file), framework="pt")
        return self._handles[file].get_tensor(name)


def plan_shards(sizes: dict[str, int], max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> dict[str, int]:
    """Tensor name -> file index (1-based), in the given order, starting a new file when the next
    tensor would overflow the current one."""
    index, used, plan = 1, 0, {}
    for name, size in sizes.items():
        if used and used + size > max_shard_bytes:
            index, used = index + 1, 0
        plan[name] = index
        used += size
    return plan


def shard_file_name(index: int, count: int) -> str:
    return SINGLE if count == 1 else f"model-{index:05d}-of-{count:05d}.safetensors"


def write_shards(names: Iterable[str], sizes: dict[str, int], read: Callable[[list[str]], dict[str, torch.Tensor]],
                 out_dir: str | Path, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> list[str]:
    """Write the named tensors as safetensors files of at most `max_shard_bytes` plus the index
    `from_pretrained` reads; `read(names)` returns one file's tensors, so one file is in memory
    at a time. Returns the file names."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_shards({name: sizes[name] for name in names}, max_shard_bytes)
    count = max(plan.values(), default=1)
    files: dict[int, list[str]] = {}
    for name, index in plan.items():
        files.setdefault(index, []).append(name)
    for index, group in files.items():
        tensors = {name: tensor.contiguous() for name, tensor in read(group).items()}
        save_file(tensors, str(out_dir / shard_file_name(index, count)), metadata={"format": "pt"})
        del tensors
    weight_map = {name: shard_file_name(index, count) for name, index in plan.items()}
    if count > 1:
        total = sum(sizes[name] for name in plan)
        (out_dir / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return sorted(set(weight_map.values()))
