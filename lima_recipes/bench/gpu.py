"""Section 8, only where CUDA is present: bf16 trained tokens per second and model FLOPs
utilisation of a Llama-7B-wide model, cut to as many decoder layers as `make plan` says fit the
device, under FSDP and DeepSpeed ZeRO-3 on one device with activation checkpointing on and off,
and each run's measured peak GPU memory beside `make plan`'s estimate for the same config.

MFU = 6 x parameters x tokens / second / the device's peak dense bf16 FLOP/s (attention's own
FLOPs left out, as is usual, so MFU slightly understates the work done).
"""

from __future__ import annotations

import copy
from pathlib import Path

from lima_recipes.bench.measure import run_child, spread

CHILD = "lima_recipes.bench.train_child"

PEAK_BF16_TFLOPS = (
    # substring of torch.cuda.get_device_name(), dense bf16 tensor-core TFLOP/s (vendor data sheets);
    # the first match wins, so the more specific names come first
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.05),
    ("L4", 121.0),
    ("A10", 125.0),
)

STRATEGIES = ("fsdp", "deepspeed_zero3")


def peak_bf16_flops(device_name: str) -> float | None:
    for fragment, tflops in PEAK_BF16_TFLOPS:
        if fragment in device_name:
            return tflops * 1e12
    return None


def mfu(parameters: int, tokens_per_s: float, peak_flops: float) -> float:
    return 6 * parameters * tokens_per_s / peak_flops


def overrides_for(strategy: str, checkpointing: bool, layers: int, micro_batch: int, global_batch: int,
                  length: int) -> list[str]:
    """The llama7b preset's width, randomly initialised (no weights needed), on one device."""
    from lima_recipes.config.resolvers import asset_path

    return [
        "model=llama7b", "model.path=null", f"model.tokenizer_path={asset_path('tiny_tokenizer')}",
        f"model.num_hidden_layers={layers}", f"strategy={strategy}",
        f"strategy.activation_checkpointing={str(checkpointing).lower()}",
        "trainer.devices=1", "trainer.num_nodes=1",
        f"trainer.micro_batch_size={micro_batch}", f"trainer.global_batch_size={global_batch}", f"data.max_length={length}",
    ]


def compose_for(overrides: list[str]):
    from lima_recipes.config import compose

    return compose([*overrides, "trainer.accelerator=gpu"])


def plan_of(cfg, layers: int | None = None):
    """`make plan` for a composed config, optionally with another layer count (composing anew for
    each count would take most of a second each)."""
    from lima_recipes.config.plan import make_plan

    if layers is not None:
        cfg = copy.deepcopy(cfg)
        cfg.model.num_hidden_layers = layers
    return make_plan(cfg, num_examples=None, examples_note="benchmark")


def plan_for(overrides: list[str]):
    return plan_of(compose_for(overrides))


def layers_that_fit(device_bytes: float, micro_batch: int, global_batch: int, length: int, share: float = 0.8,
                    max_layers: int = 32) -> int:
    """The most decoder layers (at most llama7b's 32) whose planned memory, with activation
    checkpointing off under either strategy, stays within `share` of the device."""
    configs = [compose_for(overrides_for(s, False, max_layers, micro_batch, global_batch, length)) for s in STRATEGIES]
    for layers in range(max_layers, 0, -1):
        if max(plan_of(cfg, layers).memory.total for cfg in configs) <= share * device_bytes:
            return layers
    raise RuntimeError(f"not even one llama7b-wide layer fits {device_bytes / 2**30:.0f} GiB by make plan")


def gpu_section(workdir: Path, micro_batch: int = 4, global_batch: int = 8, length: int = 2048, warmup: int = 2,
                windows: int = 3, window_steps: int = 3, max_layers: int = 32) -> dict:
    import torch

    from lima_recipes.bench.training import write_fixed_shape_data

    name = torch.cuda.get_device_name(0)
    device_bytes = torch.cuda.get_device_properties(0).total_memory
    peak = peak_bf16_flops(name)
    layers = layers_that_fit(device_bytes, micro_batch, global_batch, length, max_layers=max_layers)
    parameters = plan_for(overrides_for(STRATEGIES[0], True, layers, micro_batch, global_batch, length)).parameters
    steps = warmup + windows * window_steps
    data = write_fixed_shape_data(workdir / "fixed.jsonl", examples=global_batch * steps, tokens=length)
    common = {"data": str(data), "max_length": length, "global_batch": global_batch, "micro_batch": micro_batch,
              "warmup": warmup, "windows": windows, "window_steps": window_steps, "seed": 0,
              "cache_dir": str(workdir / "cache"), "accelerator": "gpu", "runner": "ours", "logger": "csv"}
    variants = {}
    for strategy in STRATEGIES:
        for checkpointing in (True, False):
            overrides = overrides_for(strategy, checkpointing, layers, micro_batch, global_batch, length)
            plan = plan_for(overrides)
            label = f"{strategy}, activation checkpointing {'on' if checkpointing else 'off'}"
            try:
                result = run_child(CHILD, {**common, "overrides": overrides})
            except RuntimeError as err:  # one variant out of memory must not hide the others
                variants[label] = {"error": str(err).splitlines()[0], "plan_mb": plan.memory.total / 2**20}
                continue
            windows_ = result["windows"]
            # every token of a fixed-shape batch is computed, so MFU counts all of them
            computed = [global_batch * length / w["seconds_per_step"] for w in windows_]
            variants[label] = {
                "tokens_per_s": spread(computed),
                "trained_tokens_per_s": spread([w["trained_tokens_per_s"] for w in windows_]),
                "mfu": mfu(parameters, spread(computed)["median"], peak) if peak else None,
                "measured_peak_mb": result["cuda_peak_allocated_mb"],
                "plan_mb": plan.memory.total / 2**20,
                "plan_error": plan.memory.total / 2**20 / result["cuda_peak_allocated_mb"] - 1,
            }
    measured = [v for v in variants.values() if "mfu" in v]
    best_mfu = max((v["mfu"] for v in measured if v["mfu"] is not None), default=None)
    worst_plan = max((abs(v["plan_error"]) for v in measured), default=None)
    return {
        "device": name, "device_gib": device_bytes / 2**30, "peak_bf16_tflops": peak / 1e12 if peak else None,
        "model": f"llama7b width, {layers} of 32 layers", "parameters": parameters,
        "shape": {"micro_batch": micro_batch, "global_batch": global_batch, "length": length}, "variants": variants,
        "targets": [
            {"name": "best MFU >= 40%", "value": best_mfu if best_mfu is not None else float("nan"),
             "met": best_mfu is not None and best_mfu >= 0.40},
            {"name": "plan within 10% of measured peak (worst variant)", "value": worst_plan if worst_plan is not None else float("nan"),
             "met": worst_plan is not None and worst_plan <= 0.10},
        ],
    }
