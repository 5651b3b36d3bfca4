"""Typed config: schemas, resolvers, composition with friendly errors, validation and planning."""

from lima_recipes.config.compose import CONF_DIR, compose, ensure_registered
from lima_recipes.config.validate import validate

__all__ = ["CONF_DIR", "compose", "ensure_registered", "validate"]
