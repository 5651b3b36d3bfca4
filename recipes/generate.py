"""`make generate run=<run or export dir> prompts=<set>`: responses with LIMA decoding, one JSONL
line per prompt and sample, plus automatic metrics beside the file."""

import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lima_recipes.cli import precheck_overrides, user_errors_are_one_line
from lima_recipes.config import CONF_DIR, ensure_registered

ensure_registered()


@hydra.main(config_path=str(CONF_DIR), config_name="generate", version_base="1.3")
@user_errors_are_one_line
def main(cfg: DictConfig) -> None:
    from dataclasses import asdict

    from lima_recipes.eval.generate import generate, load_for_generation, resolve_export, write_generations
    from lima_recipes.eval.metrics import automatic_metrics
    from lima_recipes.eval.prompts import load_prompts
    from lima_recipes.io import write_atomically

    export = resolve_export(cfg.run)
    prompts = load_prompts(cfg.prompts)
    model, tokenizer, eos = load_for_generation(export)
    generations = generate(prompts, model, tokenizer, eos, cfg.generation, cfg.num_samples, cfg.batch_size, cfg.seed,
                           model_name=str(export))
    run_dir = export.parent if export.name == "export" else export
    output = Path(cfg.output) if cfg.output else run_dir / "generations" / f"{cfg.prompts.name}.jsonl"
    write_generations(generations, output)
    metrics = automatic_metrics([asdict(g) for g in generations])
    write_atomically(output.with_suffix(".metrics.json"), json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    print(f"wrote {len(generations)} responses to {output}")


if __name__ == "__main__":
    precheck_overrides(sys.argv[1:], config_name="generate")
    main()
