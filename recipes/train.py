"""`make train [overrides]` (one job) and `make ablate experiment=...` (a Hydra multirun, one job
per point): compose -> validate -> train -> export -> evaluate. See README for examples."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lima_recipes.cli import precheck_overrides, quiet_library_noise, user_errors_are_one_line
from lima_recipes.config import CONF_DIR, ensure_registered

ensure_registered()


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
@user_errors_are_one_line
def main(cfg: DictConfig) -> float | None:
    quiet_library_noise()
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        from lima_recipes.sweep.job import run_sweep_job

        return run_sweep_job(cfg, hydra_cfg)
    from lima_recipes.sweep.job import is_ddp_child, run_ddp_child
    from lima_recipes.train.job import eval_key, is_global_zero, run_job

    if is_ddp_child():
        return run_ddp_child(cfg, hydra_cfg.runtime.output_dir)
    result = run_job(cfg, hydra_cfg.runtime.output_dir)
    if not is_global_zero():
        return None
    print(f"run directory: {result['run_dir']}")
    evaluation = result.get("evals", {}).get(eval_key(cfg))
    if evaluation is not None:
        if "reason" in evaluation:
            print(f"epoch {evaluation['scores']['selected_epoch']} promoted to export/: {evaluation['reason']}")
        print(f"evaluation ({cfg.eval.name}): {', '.join(evaluation['outputs'])}")
    return result.get("val/loss", result.get("train/loss"))


if __name__ == "__main__":
    precheck_overrides(sys.argv[1:])
    main()
    from lima_recipes.sweep.callbacks import LAST_SWEEP

    if LAST_SWEEP.get("failed"):
        sys.exit(1)
