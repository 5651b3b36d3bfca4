"""One rank of section 9, started by torchrun (2 CPU processes, gloo); each rank writes its own
JSON into OUT.

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m lima_recipes.bench.sharded_child '<spec json>'

load:  build the model as a loader would (FSDP2 broadcast or per-rank, or the whole model on every
       rank as DDP does), recording this rank's peak memory while it loads.
steps: `make train` for a few optimizer steps under a strategy, timing each step on rank 0.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import lightning as L
import torch

from lima_recipes.bench.measure import AnonPeak, rss_mb


def compose(spec: dict, overrides: list[str]):
    from lima_recipes.config import compose as compose_config

    out = spec["out"]
    return compose_config([f"run.output_root={out}/outputs", f"data.cache_dir={out}/cache", "logger=none",
                           "trainer.enable_progress_bar=false", "trainer.devices=2", "trainer.accelerator=cpu", *overrides])


def tokenizer_for(cfg):
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.build import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    build_template(cfg.template).install(tokenizer)
    return tokenizer


def load_and_measure(cfg, tokenizer, mesh) -> tuple[torch.nn.Module, dict]:
    """The model as `configure_model` builds it on this rank, and the memory that took."""
    from lima_recipes.model.module import Placement
    from lima_recipes.train.run import make_model

    before = rss_mb()
    with AnonPeak() as anon:
        model = make_model(cfg, tokenizer, Placement(mesh, torch.device("cpu"), False))
    return model, {"rss_before_mb": before, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "anon_before_mb": anon.before, "anon_peak_mb": anon.peak,
                   "numel": sum(p.numel() for p in model.parameters()),
                   "local_numel": sum(getattr(p, "to_local", lambda p=p: p)().numel() for p in model.parameters())}


def case_load(spec: dict) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    loader = spec["loader"]
    strategy = ["strategy=ddp"] if loader == "every_rank" else ["strategy=fsdp", f"strategy.load={loader}"]
    cfg = compose(spec, [*spec["overrides"], *strategy, "strategy.precision=32-true"])
    mesh = init_device_mesh("cpu", (dist.get_world_size(), 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    _, memory = load_and_measure(cfg, tokenizer_for(cfg), mesh if loader != "every_rank" else None)
    Path(spec["out"], f"load-{loader}-{dist.get_rank()}.json").write_text(json.dumps(memory))
    end_without_teardown()


def end_without_teardown() -> None:
    """Every rank has written its results: leave without tearing the gloo group down. Its teardown
    at interpreter exit aborted a rank once in CI (SIGABRT, "terminate called without an active
    exception") after the work was done, and it is not what these measurements are about."""
    import os

    import torch.distributed as dist

    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class StepClock(L.Callback):
    """Seconds of each optimizer step (one micro-batch per rank and step here), on rank 0."""

    def __init__(self):
        self.seconds: list[float] = []
        self._started = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def case_steps(spec: dict) -> None:
    from lima_recipes.train.run import assemble

    torch.set_num_threads(1)
    cfg = compose(spec, spec["overrides"])
    clock = StepClock()
    run = assemble(cfg, Path(spec["out"]) / "run", extra_callbacks=(clock,))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    if run.trainer.is_global_zero:
        Path(spec["out"], f"steps-{spec['name']}.json").write_text(json.dumps({"seconds": clock.seconds}))


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    {"load": case_load, "steps": case_steps}[job["case"]](job)
