"""Start-up of a tiny `make train`, phase by phase, in a fresh process:
`python -m lima_recipes.bench.startup_child '<spec json>'` prints one JSON line of seconds.

The phases follow the path `make train` takes: imports, compose and validate, data (tokenizer and a
cold tokenization of the sample data), then model and Trainer set-up and the first optimizer step.
"""

from __future__ import annotations

import json
import sys
import time

LAUNCHED = float(json.loads(sys.argv[1])["launched"]) if len(sys.argv) > 1 else time.time()

import lightning as L  # noqa: E402 - the imports are what the first phase measures
import torch  # noqa: E402,F401
import transformers  # noqa: E402,F401

from lima_recipes.config import compose, validate  # noqa: E402
from lima_recipes.train.run import assemble, prepare  # noqa: E402


def main() -> None:
    spec = json.loads(sys.argv[1])
    marks = {"imports": time.time()}
    cfg = compose([f"run.output_root={spec['workdir']}/outputs", f"data.cache_dir={spec['workdir']}/cache", "logger=csv",
                   "trainer.enable_progress_bar=false", "trainer.max_steps=1", "trainer.accelerator=cpu"])
    validate(cfg)
    marks["compose and validate"] = time.time()
    prepare(cfg)  # cold: a fresh cache directory
    marks["data"] = time.time()
    first_step = {}

    class FirstStep(L.Callback):
        def on_train_start(self, trainer, pl_module):
            first_step["model and trainer set-up"] = time.time()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 1 and "first optimizer step" not in first_step:
                first_step["first optimizer step"] = time.time()

    from pathlib import Path

    run = assemble(cfg, Path(spec["workdir"]) / "run", extra_callbacks=(FirstStep(),))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    marks.update(first_step)
    phases, previous = {}, LAUNCHED
    for name, stamp in marks.items():
        phases[name] = stamp - previous
        previous = stamp
    print(json.dumps(phases))


if __name__ == "__main__":
    main()
