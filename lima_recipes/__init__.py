"""lima-recipes: LIMA-style supervised fine-tuning composed from Hydra config groups."""

__version__ = "0.1.0"
