"""`make dashboard [sweep=<sweep dir>]`: the sweep's W&B report (created online; the spec,
<sweep>/dashboard.json, is written and printed either way)."""

import sys

import hydra
from omegaconf import DictConfig

from lima_recipes.cli import precheck_overrides, quiet_library_noise, user_errors_are_one_line
from lima_recipes.config import CONF_DIR, ensure_registered

ensure_registered()


@hydra.main(config_path=str(CONF_DIR), config_name="report", version_base="1.3")
@user_errors_are_one_line
def main(cfg: DictConfig) -> None:
    from lima_recipes.sweep.dashboard import make_dashboard
    from lima_recipes.sweep.report import build_report, find_sweep

    quiet_library_noise()
    report = build_report(find_sweep(cfg.sweep, cfg.output_root), cfg.score, cfg.wandb)
    path, outcome = make_dashboard(report)
    print(path.read_text())
    print(f"wrote {path}; {outcome}")


if __name__ == "__main__":
    precheck_overrides(sys.argv[1:], config_name="report")
    main()
