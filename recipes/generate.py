"""`make generate run=<run or export dir> prompts=<set>`: responses with LIMA decoding, one JSONL
line per prompt and sample, plus automatic metrics beside the file. `at=start` answers with the
model the run started from (before/after pairs)."""

import json
import sys

import hydra
from omegaconf import DictConfig

from lima_recipes.cli import precheck_overrides, user_errors_are_one_line
from lima_recipes.config import CONF_DIR, ensure_registered

ensure_registered()


@hydra.main(config_path=str(CONF_DIR), config_name="generate", version_base="1.3")
@user_errors_are_one_line
def main(cfg: DictConfig) -> None:
    from lima_recipes.eval.generate import generate_to_file

    output, metrics = generate_to_file(cfg.run, cfg.prompts, cfg.generation, cfg.num_samples, cfg.batch_size, cfg.seed, cfg.output, cfg.at)
    print(json.dumps(metrics, indent=2))
    print(f"wrote {metrics['responses']} responses to {output}")


if __name__ == "__main__":
    precheck_overrides(sys.argv[1:], config_name="generate")
    main()
