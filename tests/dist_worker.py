"""What the sharded tests run in 2 gloo processes on CPU (started by `run_distributed` with
torchrun). Rank 0 writes what the test compares into OUT; every rank writes its memory figures.

    python -m torch.distributed.run --nproc-per-node 2 tests/dist_worker.py CASE OUT [overrides...]

load:  build the FSDP2 model as `make train` would, gather it, keep its buffers and peak memory.
train: `run_training` in this process pair; STOP_AFTER_STEP=N raises after step N (a kill).
zero3: raw DeepSpeed ZeRO-3: load, one step, checkpoint, conversion to an HF directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from lima_recipes.bench.sharded_child import end_without_teardown, load_and_measure, tokenizer_for


def compose(out: Path, overrides: list[str]):
    from lima_recipes.config import compose as compose_config

    return compose_config([f"run.output_root={out}/outputs", f"data.cache_dir={out}/cache", "logger=csv",
                           "trainer.enable_progress_bar=false", *overrides])


def case_load(out: Path, overrides: list[str]) -> None:
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    cfg = compose(out, ["strategy=fsdp", "strategy.precision=32-true", "trainer.devices=2", "trainer.accelerator=cpu", *overrides])
    mesh = init_device_mesh("cpu", (dist.get_world_size(), 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    model, memory = load_and_measure(cfg, tokenizer_for(cfg), mesh)
    (out / f"memory-{rank}.json").write_text(json.dumps(memory))
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        buffers = {name: b.clone() for name, b in model.named_buffers()}
        torch.save({"state": full, "buffers": buffers, "param_types": sorted({type(p).__name__ for p in model.parameters()}),
                    "dtypes": sorted({str(p.dtype) for p in model.parameters()})}, out / "loaded.pt")
    end_without_teardown()


ZERO3 = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3}, "zero_allow_untested_optimizer": True,
         "zero_force_ds_cpu_optimizer": False}


def case_zero3(out: Path, overrides: list[str]) -> None:
    """Raw DeepSpeed (Lightning's DeepSpeedStrategy refuses CPUs): the ZeRO-3 loader inside
    zero.Init, one AdamW step, DeepSpeed's checkpoint, and its conversion to an HF directory."""
    import deepspeed
    import torch.distributed as dist

    from lima_recipes.train.convert import convert_checkpoint
    from lima_recipes.train.zero3 import build_zero3_model

    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    rank = dist.get_rank()
    cfg = compose(out, ["strategy=deepspeed_zero3", "strategy.activation_checkpointing=false", "model.residual_dropout=0.0", *overrides])
    tokenizer = tokenizer_for(cfg)
    with deepspeed.zero.Init(config_dict_or_path=ZERO3):
        model = build_zero3_model(cfg, tokenizer, ZERO3)
    local = sum(p.numel() for p in model.parameters())
    with deepspeed.zero.GatheredParameters(list(model.parameters())):
        loaded = {k: v.detach().clone() for k, v in model.state_dict().items()}
        buffers = {k: v.clone() for k, v in model.named_buffers()}
    # wrapped as Lightning wraps it, so DeepSpeed's checkpoint names tensors `_forward_module.model.*`
    lightning_like = torch.nn.Module()
    lightning_like.model = model
    wrapper = torch.nn.Module()
    wrapper._forward_module = lightning_like
    wrapper.forward = lambda **batch: model(**batch)
    engine, *_ = deepspeed.initialize(model=wrapper, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3), config=ZERO3)
    ids = torch.randint(0, 64, (1, 16), generator=torch.Generator().manual_seed(rank))
    loss = engine(input_ids=ids, labels=ids, use_cache=False).loss
    engine.backward(loss)
    engine.step()
    engine.save_checkpoint(str(out / "zero"), tag="step1")
    with deepspeed.zero.GatheredParameters(list(model.parameters())):
        stepped = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if rank == 0:  # what `make convert ckpt=<DeepSpeed dir>` runs, the config and tokenizer taken from `like`
        from lima_recipes.data.templates import build_template
        from lima_recipes.model.export import write_model_files

        eot = build_template(cfg.template).end_of_turn(tokenizer)
        write_model_files(out / "like", model.config, torch.float32, tokenizer, eot, cfg.generation)
        convert_checkpoint(out / "zero", out / "hf", torch.bfloat16, like=out / "like")
        torch.save({"loaded": loaded, "buffers": buffers, "stepped": stepped, "local_numel": local}, out / "zero3.pt")
    end_without_teardown()


def case_train(out: Path, overrides: list[str]) -> None:
    from interrupt import StopRun, stop_after_step  # tests/, this script's directory
    from lima_recipes.train.run import run_training

    stop_after = int(os.environ.get("STOP_AFTER_STEP", "0"))
    if stop_after:
        stop_after_step(stop_after)
    cfg = compose(out, ["trainer.devices=2", "trainer.accelerator=cpu", *overrides])
    try:
        result = run_training(cfg, out / "run")
    except StopRun as stop:
        print(stop, file=sys.stderr)
        sys.exit(3)
    if int(os.environ.get("RANK", "0")) == 0:
        (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    case, out, *rest = sys.argv[1:]
    {"load": case_load, "train": case_train, "zero3": case_zero3}[case](Path(out), rest)
