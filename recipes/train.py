"""`make train [overrides]`: compose -> validate -> train -> export. See README for examples."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lima_recipes.cli import precheck_overrides, quiet_library_noise, user_errors_are_one_line
from lima_recipes.config import CONF_DIR, ensure_registered

ensure_registered()


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
@user_errors_are_one_line
def main(cfg: DictConfig) -> float | None:
    from lima_recipes.train.run import run_training

    quiet_library_noise()
    result = run_training(cfg, HydraConfig.get().runtime.output_dir)
    print(f"run directory: {result['run_dir']}")
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if cfg.eval.kind == "dev_select" and rank_zero_only.rank == 0:
        from lima_recipes.eval.app import run_dev_select

        record = run_dev_select(cfg, result["run_dir"])
        print(f"epoch {record['winner']} promoted to export/: {record['reason']}")
    return result.get("val/loss", result.get("train/loss"))


if __name__ == "__main__":
    precheck_overrides(sys.argv[1:])
    main()
