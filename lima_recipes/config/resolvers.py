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


def config_hash(cfg: DictConfig, length: int = 10) -> str:
    """Short stable hash of the resolved config without its `hydra` node or after-training keys.

    Excluding hydra keeps the id identical for the same experiment whatever the launcher,
    the output directory or the DDP re-launch overrides say.
    """
    container = OmegaConf.to_container(cfg, resolve=False)
    for key in ("hydra", *AFTER_TRAINING_KEYS):
        container.pop(key, None)
    plain = OmegaConf.create(container)
    resolved = OmegaConf.to_container(plain, resolve=True)
    blob = json.dumps(resolved, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _run_id(*, _root_: DictConfig) -> str:
    return config_hash(_root_)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("lima_asset"):
        OmegaConf.register_new_resolver("lima_asset", asset_path)
    if not OmegaConf.has_resolver("lima_run_id"):
        OmegaConf.register_new_resolver("lima_run_id", _run_id)
