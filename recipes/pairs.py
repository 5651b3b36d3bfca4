"""`make pairs run=<SFT run> prompts=<set> judge=<judge>`: sample responses from an SFT export,
judge every two of a prompt's responses in both orders, and write the agreed pairs as the
preference JSONL `make train stage=dpo` reads."""

import json
import sys

import hydra
from omegaconf import DictConfig

from lima_recipes.cli import precheck_overrides, quiet_library_noise, user_errors_are_one_line
from lima_recipes.config import CONF_DIR, ensure_registered

ensure_registered()


@hydra.main(config_path=str(CONF_DIR), config_name="pairs", version_base="1.3")
@user_errors_are_one_line
def main(cfg: DictConfig) -> None:
    from lima_recipes.eval.pairs import build_pairs

    quiet_library_noise()
    output, summary = build_pairs(cfg)
    print(json.dumps({k: summary[k] for k in ("prompts", "compared", "agreed", "ties", "invalid", "kept",
                                               "chosen_to_rejected_length")}, indent=2))
    print(f"wrote {summary['kept']} pairs to {output}")


if __name__ == "__main__":
    precheck_overrides(sys.argv[1:], config_name="pairs")
    main()
