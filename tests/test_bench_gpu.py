"""The GPU section's arithmetic and configs, checked on CPU (the section itself runs only where
CUDA is present): peak FLOP/s lookup, MFU, the configs it trains, and the layer count it picks."""

from __future__ import annotations

import pytest

from lima_recipes.bench.gpu import STRATEGIES, layers_that_fit, mfu, overrides_for, peak_bf16_flops, plan_for

GIB = 2**30


def test_peak_flops_prefers_the_specific_device_name():
    assert peak_bf16_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_bf16_flops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4e12)
    assert peak_bf16_flops("NVIDIA H200") == pytest.approx(989.4e12)
    assert peak_bf16_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_bf16_flops("Some Future GPU") is None


def test_mfu_is_six_flops_per_parameter_per_token_over_the_peak():
    # 7e9 parameters at 10,000 tokens/s: 4.2e14 FLOP/s, 42.4% of 989.4 TFLOP/s
    assert mfu(7_000_000_000, 10_000, 989.4e12) == pytest.approx(0.4245, abs=1e-4)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("checkpointing", [True, False])
def test_every_variant_composes_as_a_one_device_bf16_run(strategy, checkpointing):
    plan = plan_for(overrides_for(strategy, checkpointing, layers=32, micro_batch=4, global_batch=8, length=2048))
    assert plan.parameters == 6_738_415_616  # LLaMA-7B, every layer
    assert plan.world_size == 1 and plan.strategy == strategy and plan.precision.startswith("bf16")
    assert plan.accumulation == 2


def test_fewer_layers_plan_fewer_parameters_and_less_memory():
    full = plan_for(overrides_for("fsdp", False, 32, 4, 8, 2048))
    cut = plan_for(overrides_for("fsdp", False, 8, 4, 8, 2048))
    per_layer = (full.parameters - cut.parameters) / 24
    assert per_layer == 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096  # attention, MLP, two norms
    assert cut.memory.total < full.memory.total


def test_the_layer_count_is_the_largest_that_fits_the_device_share():
    layers = layers_that_fit(141 * GIB, micro_batch=4, global_batch=8, length=2048)
    assert 1 <= layers < 32
    worst = lambda n: max(plan_for(overrides_for(s, False, n, 4, 8, 2048)).memory.total for s in STRATEGIES)  # noqa: E731
    assert worst(layers) <= 0.8 * 141 * GIB < worst(layers + 1)
    assert layers_that_fit(80 * GIB, 4, 8, 2048) < layers
    with pytest.raises(RuntimeError, match="not even one"):
        layers_that_fit(1 * GIB, 4, 8, 2048)
