"""`make curate [overrides]`: curate raw source dumps into a LIMA-style training set + data card."""

import sys

import hydra
from omegaconf import DictConfig

from lima_recipes.cli import precheck_overrides, user_errors_are_one_line
from lima_recipes.config import CONF_DIR, ensure_registered

ensure_registered()


@hydra.main(config_path=str(CONF_DIR), config_name="curate", version_base="1.3")
@user_errors_are_one_line
def main(cfg: DictConfig) -> None:
    from lima_recipes.curate.pipeline import curate

    card = curate(cfg.curate)
    for name, source in card["sources"].items():
        note = source["skipped"] or f"{source['delivered']} of {source['requested']}"
        print(f"  {name:24s} {note}")
    print(f"wrote {card['examples']} examples to {card['output']} (data card beside it)")


if __name__ == "__main__":
    precheck_overrides(sys.argv[1:], config_name="curate")
    main()
