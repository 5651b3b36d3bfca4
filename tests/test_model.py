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
    "llama2_70b": 68_976_648_192, "llama3_8b": 8_030_261_248, "llama3_70b": 70_553_706_496,
    "qwen2_5_7b": 7_615_616_512, "qwen2_5_0_5b": 494_032_768, "mistral_7b": 7_241_732_096,
    "smollm2_135m": 134_515_008, "gemma3_270m": 268_098_176,
}


@pytest.mark.parametrize("preset,count", PUBLISHED.items())
def test_big_presets_build_on_meta_with_published_counts(compose_cfg, preset, count):
    model = build_meta_model(compose_cfg(f"model={preset}").model)
    assert sum(p.numel() for p in model.parameters()) == count
    assert next(model.parameters()).device.type == "meta"


FAMILIES = {  # tiny random members of each supported family: (model_type, extra config, branch modules)
    "llama": ({}, ("self_attn", "mlp")),
    "mistral": ({}, ("self_attn", "mlp")),
    "qwen2": ({}, ("self_attn", "mlp")),
    "qwen3": ({"head_dim": 16}, ("self_attn", "mlp")),
    "phi3": ({}, ("self_attn", "mlp")),
    "gemma2": ({"head_dim": 16}, ("post_attention_layernorm", "post_feedforward_layernorm")),
    "gemma3_text": ({"head_dim": 16}, ("post_attention_layernorm", "post_feedforward_layernorm")),
    "olmo2": ({}, ("post_attention_layernorm", "post_feedforward_layernorm")),
}


def tiny_family_model(model_type: str, **extra):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=None,
                                  bos_token_id=None, eos_token_id=None, **extra)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_residual_dropout_sits_where_each_family_adds_a_branch_to_the_residual(model_type):
    from lima_recipes.model.layers import decoder_layers, residual_branches

    extra, branch_names = FAMILIES[model_type]
    model = tiny_family_model(model_type, **extra)
    layers = decoder_layers(model)
    assert len(layers) == 3 and all(type(layer).__name__ in model._no_split_modules for layer in layers)
    assert residual_branches(layers[0]) == tuple(getattr(layers[0], name) for name in branch_names)
    assert apply_residual_dropout(model, 0.3) == pytest.approx([0.0, 0.15, 0.3])
    assert [len(getattr(layers[2], name)._forward_hooks) for name in branch_names] == [1, 1]
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.eval()
        plain = model(input_ids=ids).logits
        model.train()
        dropped = model(input_ids=ids).logits
    assert not torch.allclose(plain, dropped)


def test_an_unsupported_layer_layout_is_one_error_naming_its_class():
    from lima_recipes.errors import ConfigError

    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=32))
    with pytest.raises(ConfigError, match=r"GPT2Block: no self_attn / mlp to put LIMA's residual dropout on"):
        apply_residual_dropout(model, 0.2)
    assert apply_residual_dropout(model, 0.0) == [0.0, 0.0]  # the escape the message names


def test_experiment_presets_take_batch_dropout_and_hardware_from_the_model(compose_cfg):
    cfg = compose_cfg("experiment=lima7b", "model=llama65b")
    assert (cfg.trainer.global_batch_size, cfg.model.residual_dropout) == (32, 0.3)
    assert (cfg.trainer.devices, cfg.trainer.num_nodes, cfg.optim.lr) == (8, 2, 1e-5)
    small = compose_cfg("experiment=lima65b", "model=llama7b")
    assert (small.trainer.global_batch_size, small.model.residual_dropout, small.trainer.num_nodes) == (64, 0.2, 1)


def test_model_hf_reads_the_checkpoint_and_needs_its_path(compose_cfg, tmp_path):
    from lima_recipes.config import validate
    from lima_recipes.config.plan import make_plan
    from lima_recipes.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model=hf reads its architecture from a checkpoint: pass model.path="):
        validate(compose_cfg("model=hf"))
    model = tiny_family_model("qwen2")
    model.save_pretrained(tmp_path / "qwen")
    plan = make_plan(compose_cfg("model=hf", f"model.path={tmp_path / 'qwen'}"), 10, "")
    assert plan.parameters == sum(p.numel() for p in model.parameters())
    assert len(plan.dropout_by_layer) == 3  # the checkpoint's 3 layers, not the inherited preset's 32


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


@pytest.mark.slow
def test_a_pretrained_model_trains_with_its_dropout_on(compose_cfg, tiny_tokenizer, tmp_path):
    """from_pretrained returns eval mode and Lightning keeps the mode a module arrives in: the
    module must switch the loaded model to training, or every dropout stays off."""
    import lightning as L

    from lima_recipes.train.run import assemble

    build_model(compose_cfg().model, tiny_tokenizer, seed=0).save_pretrained(tmp_path / "ckpt")
    tiny_tokenizer.save_pretrained(tmp_path / "ckpt")
    modes = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            modes.append([m.training for m in pl_module.model.modules()])

    cfg = compose_cfg("model=hf", f"model.path={tmp_path / 'ckpt'}", "model.dtype=float32", "trainer.max_steps=1",
                      "trainer.enable_progress_bar=false", "trainer.global_batch_size=4", "trainer.micro_batch_size=4")
    run = assemble(cfg, tmp_path / "run", extra_callbacks=(Record(),))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert modes and all(modes[0])


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
