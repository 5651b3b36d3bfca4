"""`make convert ckpt=<checkpoint> [out=<dir>] [dtype=bfloat16]`: any training checkpoint (sharded
last.ckpt, DeepSpeed, single file) -> a Hugging Face directory, streaming a file's tensors at a time."""

import sys

import hydra
from omegaconf import DictConfig

from lima_recipes.cli import precheck_overrides, quiet_library_noise, user_errors_are_one_line
from lima_recipes.config import CONF_DIR, ensure_registered

ensure_registered()


@hydra.main(config_path=str(CONF_DIR), config_name="convert", version_base="1.3")
@user_errors_are_one_line
def main(cfg: DictConfig) -> None:
    from lima_recipes.errors import ConfigError
    from lima_recipes.model.build import DTYPES
    from lima_recipes.train.convert import convert_checkpoint

    quiet_library_noise()
    if cfg.ckpt is None:
        raise ConfigError("ckpt is required: make convert ckpt=<run>/checkpoints/last.ckpt [out=<dir>] [dtype=bfloat16]")
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype={cfg.dtype!r} is not one of {', '.join(DTYPES)}")
    out = cfg.out or f"{str(cfg.ckpt).rstrip('/')}.hf"
    written = convert_checkpoint(cfg.ckpt, out, DTYPES[cfg.dtype], cfg.like, int(cfg.max_shard_gb * 1024**3))
    print(f"wrote {written} ({cfg.dtype}); load it with AutoModelForCausalLM.from_pretrained")


if __name__ == "__main__":
    precheck_overrides(sys.argv[1:], config_name="convert")
    main()
