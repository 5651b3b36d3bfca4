"""Compose conf/ with the Compose API and turn Hydra/OmegaConf errors into one-line fixes."""

from __future__ import annotations

import difflib
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Union, get_args, get_origin, get_type_hints

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from lima_recipes.config.resolvers import register_resolvers
from lima_recipes.config.schema import (ConvertAppConfig, CurateAppConfig, EvalAppConfig, GenerateAppConfig, PairsAppConfig,
                                        ReportAppConfig, TrainAppConfig, register_configs)
from lima_recipes.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

_registered = False


def ensure_registered() -> None:
    """Register schemas and resolvers once per process (entry points and tests both call it)."""
    global _registered
    if not _registered:
        register_configs()
        register_resolvers()
        _registered = True


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train", config_dir: str | Path = CONF_DIR,
            return_hydra_config: bool = False) -> DictConfig:
    """Compose the root config with overrides; any composition error becomes a ConfigError."""
    ensure_registered()
    try:
        with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(explain_compose_error(err)) from None


ROOT_SCHEMAS = (TrainAppConfig, CurateAppConfig, GenerateAppConfig, EvalAppConfig, ReportAppConfig, ConvertAppConfig,
                PairsAppConfig)


def _schema_fields(full_key: str) -> list[str]:
    """Valid field names at the level of `full_key`, found by walking the schema types from the
    roots (trainer.max_epoch -> TrainerConfig; curate.sources.wikihow.pth -> SourceConfig, the
    `wikihow` level being a dict key)."""
    parents = full_key.split(".")[:-1]
    candidates: list[str] = []
    for root in ROOT_SCHEMAS:
        schema = root
        for part in parents:
            if get_origin(schema) is dict:  # dict[str, Schema]: any key, then the value schema
                schema = get_args(schema)[1]
                continue
            hints = get_type_hints(schema) if is_dataclass(schema) else {}
            schema = _unwrap_optional(hints.get(part))
            if schema is None:
                break
        if is_dataclass(schema):
            candidates += [f.name for f in fields(schema) if f.name != "defaults"]
    return candidates


def _unwrap_optional(hint):
    args = [a for a in get_args(hint) if a is not type(None)]
    return args[0] if get_origin(hint) is Union and len(args) == 1 else hint


def suggest_key(full_key: str) -> str | None:
    """The closest valid key to a misspelt one, as a full dotted key."""
    prefix, _, leaf = full_key.rpartition(".")
    close = difflib.get_close_matches(leaf, _schema_fields(full_key), n=1, cutoff=0.6)
    if not close:
        return None
    return f"{prefix}.{close[0]}" if prefix else close[0]


def explain_compose_error(err: Exception) -> str:
    """One line naming the bad key or value and what to do instead."""
    text = str(err)
    cause = err.__cause__ or err.__context__
    full = text + ("\n" + str(cause) if cause is not None else "")
    missing_key = re.search(r"Key '([^']+)' not in '(\w+)'", full)
    full_key = re.search(r"full_key: (\S+)", full)
    if missing_key:
        key = full_key.group(1) if full_key else missing_key.group(1)
        hint = suggest_key(key)
        where = _preset_hint(full)
        msg = f"unknown config key '{key}'{where}"
        return msg + (f" (did you mean '{hint}'?)" if hint else " (the schemas in lima_recipes/config/schema.py list the valid keys)")
    choice = re.search(r"Could not find '([^']+)'", full)
    if choice:
        group, _, option = choice.group(1).rpartition("/")
        options = _group_options(group)
        hint = difflib.get_close_matches(option, options, n=1)
        msg = f"unknown option '{option}' for config group '{group}'; available: {', '.join(options)}"
        return msg + (f" (did you mean '{group}={hint[0]}'?)" if hint else "")
    value = (re.search(r"Value '([^']*)' (?:of type '\w+' )?could not be converted to (\w+)", full)
             or re.search(r"Value '([^']*)' is not a valid (\w+)", full))
    if value and full_key:
        return f"{full_key.group(1)}='{value.group(1)}' is not a valid {value.group(2)}"
    first = next((line for line in full.splitlines() if line.strip()), full)
    return first.strip()


def _preset_hint(text: str) -> str:
    """' in conf/experiment/typo.yaml' when the bad key sits inside a preset file."""
    where = re.search(r"In '([\w/]+)'", text)
    return "" if where is None else f" in conf/{where.group(1)}.yaml"


def _group_options(group: str) -> list[str]:
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
