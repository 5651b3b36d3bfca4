"""Residual dropout schedule, optimizer and LR schedule, big presets on meta, strategy objects."""

from __future__ import annotations

import pytest
import torch

from lima_recipes.model.build import build_meta_model, build_model
from lima_recipes.model.dropout import apply_residual_dropout, residual_dropout_rates
from lima_recipes.model.module import CausalLMModule, linear_schedule

PUBLISHED = {
    "llama7b": 6_738_415_616, "llama13b": 13_015_864_320, "llama33b": 32_528_943_616,
    "llama65b": 65_285_660_672, "llama2_7b": 6_738_415_616, "llama2_13b": 13_015_864_320,
    "llama2_70b": 68_976_648_192,
}


@pytest.mark.parametrize("preset,count", PUBLISHED.items())
def test_big_presets_build_on_meta_with_published_counts(compose_cfg, preset, count):
    model = build_meta_model(compose_cfg(f"model={preset}").model)
    assert sum(p.numel() for p in model.parameters()) == count
    assert next(model.parameters()).device.type == "meta"


def test_dropout_rises_linearly_from_bottom_to_top():
    assert residual_dropout_rates(4, 0.3) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    rates = residual_dropout_rates(80, 0.3)
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3) and all(b > a for a, b in zip(rates, rates[1:]))


def test_dropout_hooks_apply_the_layer_rate_in_training_only(compose_cfg, tiny_tokenizer):
    cfg = compose_cfg("model.residual_dropout=0.3")
    model = build_model(cfg.model, tiny_tokenizer, seed=0)
    keys = set(model.state_dict())
    rates = apply_residual_dropout(model, 0.3)
    assert set(model.state_dict()) == keys  # export sees a plain transformers model
    assert [layer.residual_dropout for layer in model.model.layers] == rates
    x = torch.randn(4, 256, cfg.model.hidden_size)
    for layer, p in zip(model.model.layers, rates):
        layer.mlp.train()
        zeros = (layer.mlp(x) == 0).float().mean().item()
        assert zeros == pytest.approx(p, abs=0.03)
        layer.mlp.eval()
        assert (layer.mlp(x) == 0).float().mean().item() == 0.0
    ids = torch.randint(0, 100, (2, 12))
    model.eval()
    a = model(input_ids=ids).logits
    model.train()
    assert not torch.allclose(model(input_ids=ids).logits, a)


def test_lima_schedule_decays_linearly_from_1e5_to_1e6_without_warmup():
    lrs = [1e-5 * linear_schedule(s, 100, 0, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1e-6)
    diffs = [a - b for a, b in zip(lrs, lrs[1:])]
    assert max(diffs) == pytest.approx(min(diffs))


def test_optimizer_is_adamw_with_lima_settings(compose_cfg, tiny_tokenizer):
    cfg = compose_cfg("model=tiny", "optim.lr=1e-5", "optim.final_lr=1e-6")
    module = CausalLMModule(lambda _: build_model(cfg.model, tiny_tokenizer, 0), cfg.optim, total_steps=20)
    module.configure_model()
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.95)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]  # norms are not decayed
    assert all(p.ndim >= 2 for p in opt.param_groups[0]["params"])
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(1e-5) and seen[-1] == pytest.approx(1e-6)


@pytest.mark.parametrize("option", ["auto", "ddp", "fsdp", "fsdp_offload", "deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload"])
def test_each_strategy_builds_the_right_lightning_object(compose_cfg, option):
    from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, ModelParallelStrategy

    from lima_recipes.train.strategies import build_strategy, lightning_precision

    cfg = compose_cfg(f"strategy={option}", "strategy.timeout_minutes=90")
    strategy = build_strategy(cfg.strategy, world_size=8)
    if option == "auto":
        assert strategy == "auto"
    elif option == "ddp":
        assert isinstance(strategy, DDPStrategy) and strategy._timeout.total_seconds() == 90 * 60
    elif option.startswith("fsdp"):
        # FSDP2: fully_shard is applied by the model factory (tests/test_sharded.py and below);
        # Lightning runs it at 32-true, the mixed precision being FSDP2's own policy
        assert isinstance(strategy, ModelParallelStrategy) and cfg.strategy.precision == "bf16-mixed"
        assert lightning_precision(cfg.strategy) == "32-true"
        assert (strategy._data_parallel_size, strategy._tensor_parallel_size) == (8, 1)
        assert strategy._save_distributed_checkpoint and strategy._timeout.total_seconds() == 90 * 60
    else:
        assert isinstance(strategy, DeepSpeedStrategy) and lightning_precision(cfg.strategy) == "bf16-mixed"
        zero = strategy.config["zero_optimization"]
        assert zero["stage"] == (2 if option.endswith("zero2") else 3)
        assert ("offload_optimizer" in zero) == option.endswith("offload")
        assert ("offload_param" in zero) == option.endswith("offload")


@pytest.fixture
def one_process_group():
    """A gloo group of one: enough for fully_shard to build its (trivial) shards in-process."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:0", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("option,offload", [("fsdp", False), ("fsdp_offload", True)])
def test_fsdp2_shards_each_decoder_layer_with_bf16_compute_and_fp32_reduction(compose_cfg, tiny_tokenizer, one_process_group,
                                                                             option, offload):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from lima_recipes.model.module import Placement
    from lima_recipes.train.sharded import build_sharded_model

    cfg = compose_cfg(f"strategy={option}", "trainer.accelerator=cpu")
    mesh = init_device_mesh("cpu", (1, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    model = build_sharded_model(cfg, tiny_tokenizer, Placement(mesh, torch.device("cpu"), False))
    layers = [m for m in model.modules() if isinstance(m, LlamaDecoderLayer)]
    assert len(layers) == 4 and all(isinstance(m, FSDPModule) for m in [model, *layers])
    state = model._get_fsdp_state()._fsdp_param_group
    assert (state.mp_policy.param_dtype, state.mp_policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert isinstance(state.offload_policy, CPUOffloadPolicy) == offload
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.is_activation_checkpointing  # the fsdp preset checkpoints activations
    assert [layer.residual_dropout for layer in layers] == pytest.approx([0.0, 0.2 / 3, 0.4 / 3, 0.2])


def test_activation_checkpointing_switch(compose_cfg, tiny_tokenizer):
    from lima_recipes.train.run import make_model

    assert make_model(compose_cfg("strategy=ddp", "strategy.activation_checkpointing=true"), tiny_tokenizer).is_activation_checkpointing
    assert not make_model(compose_cfg("strategy=ddp"), tiny_tokenizer).is_activation_checkpointing


def test_submitit_jobs_leave_requeueing_to_submitit():
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from lima_recipes.train.strategies import cluster_plugins

    (plugin,) = cluster_plugins({"SUBMITIT_EXECUTOR": "slurm"})
    assert isinstance(plugin, SLURMEnvironment) and not plugin.auto_requeue
    assert cluster_plugins({"SLURM_JOB_ID": "7"}) == []  # plain srun: Lightning's own SLURM environment requeues
