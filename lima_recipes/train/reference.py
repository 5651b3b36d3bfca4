"""DPO's reference log-probabilities, computed once and kept on disk.

The reference is the model DPO starts from. Its log-probability of every chosen and rejected
answer is computed in one pass before the first update (by the module, on the accelerator, under
the run's strategy and precision) and written to `<stage.reference_cache_dir>/<key>.npz`, so the
reference is never held in memory beside the policy and a re-run reads instead of recomputing.
The key covers everything those numbers depend on: the reference weights (file contents), the
data file, tokenizer, template, data.max_length and selection, and the precision; any change
means a new file. (TRL keys its precompute cache on the dataset fingerprint and a module hash,
open-instruct on model, data config and loss settings.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from lima_recipes.data.dataset import tokenizer_fingerprint
from lima_recipes.io import write_atomically

CACHE_VERSION = 1
"""Bump when the way log-probabilities are computed changes."""

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".json")


def _file_digest(path: Path, memo_dir: Path) -> str:
    """sha256 of a file's content, remembered under (path, size, mtime) so a 130 GB checkpoint is
    read once, not on every run."""
    stat = path.stat()
    memo = memo_dir / "file_digests.json"
    entry = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    known = json.loads(memo.read_text()) if memo.is_file() else {}
    if entry not in known:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 24), b""):
                digest.update(chunk)
        known = json.loads(memo.read_text()) if memo.is_file() else {}
        known[entry] = digest.hexdigest()
        write_atomically(memo, json.dumps(known, indent=1))
    return known[entry]


def weights_fingerprint(model_cfg, memo_dir: Path) -> str:
    """The content of the reference weights: model.path's weight and config files, or its GGUF file."""
    from lima_recipes.model.build import gguf_path, local_checkpoint_dir

    if getattr(model_cfg, "gguf_file", None):
        files = [gguf_path(model_cfg)]
    else:
        root = local_checkpoint_dir(model_cfg)
        files = sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    memo_dir.mkdir(parents=True, exist_ok=True)
    return hashlib.sha256(json.dumps([[p.name, _file_digest(p, memo_dir)] for p in files]).encode()).hexdigest()


def reference_key(cfg, source, tokenizer, template, is_train: bool, weights: str) -> str:
    d = cfg.data
    parts = {
        "version": CACHE_VERSION,
        "weights": weights,
        "dtype": cfg.model.dtype,
        "precision": cfg.strategy.precision,
        "data": source.fingerprint(),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "template": [template.name, template.jinja(), template.end_of_turn(tokenizer), template.system_prompt],
        "max_length": d.max_length,
        "selection": [d.on_invalid, d.max_user_turns, d.max_examples if is_train else None,
                      d.sample_seed if is_train and d.max_examples is not None else None],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


class ReferenceStore:
    """One set's reference log-probabilities: an (N, 2) float64 table, [pair, (chosen, rejected)]."""

    def __init__(self, path: Path, num_pairs: int, description: str):
        self.path, self.num_pairs, self.description = Path(path), num_pairs, description

    def load(self) -> torch.Tensor | None:
        if not self.path.is_file():
            return None
        with np.load(self.path) as arrays:
            table = arrays["logps"]
        if table.shape != (self.num_pairs, 2):
            raise ValueError(f"{self.path}: holds {table.shape[0]} pairs, {self.description} has {self.num_pairs}; "
                             "delete the file to recompute it")
        return torch.from_numpy(table)

    def save(self, table: torch.Tensor) -> None:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, logps=table.double().cpu().numpy())
        write_atomically(self.path, buffer.getvalue())

