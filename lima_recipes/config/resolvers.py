"""OmegaConf resolvers used by conf/: shipped asset paths and the run id of a resolved config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def asset_path(relative: str) -> str:
    """Absolute path of a file shipped in lima_recipes/assets, so configs work from any cwd."""
    return str(ASSETS / relative)


# What runs after training (and how examples are previewed) does not change the trained weights,
# so `make train eval=dev_select` finds the run that `make train` wrote instead of retraining.
AFTER_TRAINING_KEYS = ("eval", "judge", "prompts", "preview")

# Settings that change how a run is carried out or watched, not what it trains: re-running an
# interrupted job with more frequent checkpoints, another logger or a progress bar resumes it.
OPERATIONAL_KEYS = ("run.output_root", "logger", "data.cache_dir", "model.gguf_cache_dir", "data.num_workers", "trainer.enable_progress_bar",
                    "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps")


def config_hash(cfg: DictConfig, length: int = 10) -> str:
    """Short stable hash of the resolved config without its `hydra` node, after-training keys or
    operational settings.

    Excluding hydra keeps the id identical for the same experiment whatever the launcher,
    the output directory or the DDP re-launch overrides say.
    """
    container = OmegaConf.to_container(cfg, resolve=False)
    for key in ("hydra", *AFTER_TRAINING_KEYS, *OPERATIONAL_KEYS):
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    plain = OmegaConf.create(container)
    resolved = OmegaConf.to_container(plain, resolve=True)
    blob = json.dumps(resolved, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def scaled(value, *factors) -> float:
    """value x factors for a config (a learning rate times an adapter's and a stage's scale),
    rounded to 12 significant digits so that 3e-4 x 10 reads 0.003, not 0.0029999999999999996."""
    for factor in factors:
        value = float(value) * float(factor)
    return float(f"{float(value):.12g}")


def _run_id(*, _root_: DictConfig) -> str:
    return config_hash(_root_)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("lima_asset"):
        OmegaConf.register_new_resolver("lima_asset", asset_path)
    if not OmegaConf.has_resolver("lima_mul"):
        OmegaConf.register_new_resolver("lima_mul", scaled)
    if not OmegaConf.has_resolver("lima_run_id"):
        OmegaConf.register_new_resolver("lima_run_id", _run_id)
