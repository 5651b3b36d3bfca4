"""`make eval eval=pairwise|absolute|likert|dev_select judge=openai|hf ...`: LIMA's judged
evaluations and checkpoint selection. See README for examples."""

import sys

import hydra
from omegaconf import DictConfig

from lima_recipes.cli import precheck_overrides, quiet_library_noise, user_errors_are_one_line
from lima_recipes.config import CONF_DIR, ensure_registered

ensure_registered()


@hydra.main(config_path=str(CONF_DIR), config_name="eval", version_base="1.3")
@user_errors_are_one_line
def main(cfg: DictConfig) -> None:
    from lima_recipes.eval.app import run_eval

    quiet_library_noise()
    run_eval(cfg)


if __name__ == "__main__":
    precheck_overrides(sys.argv[1:], config_name="eval")
    main()
