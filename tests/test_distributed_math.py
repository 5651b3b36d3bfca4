"""What multi-GPU strategies change, checked without GPUs: weight-decay groups that survive
sharding, fp32 master weights, DeepSpeed's own accumulation scaling, step-boundary metrics."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lima_recipes.model.module import CausalLMModule, is_norm_or_bias


@pytest.mark.parametrize("name,expected", [
    ("model.layers.0.input_layernorm.weight", True),
    ("_fsdp_wrapped_module.model.layers.3.post_attention_layernorm.weight", True),
    ("model.norm.weight", True),
    ("some.proj.bias", True),
    ("model.layers.0.mlp.up_proj.weight", False),
    ("_fsdp_wrapped_module.model.embed_tokens.weight", False),
    ("lm_head.weight", False),
])
def test_decay_groups_are_chosen_by_name_not_by_shape(name, expected):
    assert is_norm_or_bias(name) is expected


# FSDP2's fp32 shards of a bf16 checkpoint are checked where it runs: tests/test_sharded.py
@pytest.mark.parametrize("strategy,fp32", [("auto", True), ("ddp", True), ("deepspeed_zero3", False)])
def test_bf16_checkpoints_train_with_fp32_master_weights_except_under_deepspeed(compose_cfg, tiny_tokenizer, strategy, fp32):
    from lima_recipes.train.run import make_model

    cfg = compose_cfg(f"strategy={strategy}", "model.dtype=bfloat16", "strategy.activation_checkpointing=false")
    model = make_model(cfg, tiny_tokenizer)
    assert {p.dtype for p in model.parameters()} == {torch.float32 if fp32 else torch.bfloat16}


def fake_trainer(handles_accumulation: bool, accumulation: int):
    strategy = SimpleNamespace(handles_gradient_accumulation=handles_accumulation, reduce=lambda x, reduce_op: x)
    return SimpleNamespace(strategy=strategy, accumulate_grad_batches=accumulation, global_rank=0, global_step=0)


def test_deepspeed_gets_one_more_accumulation_factor(compose_cfg, tiny_tokenizer):
    from lima_recipes.data.batching import MicroBatch, collate
    from lima_recipes.data.dataset import TokenizedSet
    from lima_recipes.model.build import build_model

    cfg = compose_cfg()
    model = build_model(cfg.model, tiny_tokenizer, seed=0).eval()
    module = CausalLMModule(lambda _: model, cfg.optim, total_steps=4)
    module.configure_model()
    ids = torch.arange(5, 25).numpy()
    data = TokenizedSet([ids], [ids.copy()], ["x"])
    batch = collate(data, MicroBatch((0,), 19), pad_token_id=0, multiple=1, accumulation=4)
    module._trainer = fake_trainer(False, 4)
    plain = module.training_step(batch, 0)
    module._trainer = fake_trainer(True, 4)
    deepspeed = module.training_step(batch, 0)
    torch.testing.assert_close(deepspeed, plain * 4)
    assert batch["global_trained_tokens"].dtype == torch.long  # immune to bf16 input casting


def test_step_metrics_wait_for_the_last_micro_batch(compose_cfg, tiny_tokenizer):
    cfg = compose_cfg()
    module = CausalLMModule(lambda _: None, cfg.optim, total_steps=4)
    module._trainer = fake_trainer(True, 4)
    module._step_stats += torch.tensor([1.0, 10, 10, 10])
    module._micro_steps = 2
    module.on_before_optimizer_step(optimizer=None)  # DeepSpeed calls it after every micro-batch
    assert module._step_stats[0] == 1.0 and module._micro_steps == 2


def test_deepspeed_strategy_options(compose_cfg):
    from lima_recipes.train.strategies import build_strategy, uses_cpu_adam

    strategy = build_strategy(compose_cfg("strategy=deepspeed_zero3").strategy, micro_batch_size=4)
    assert strategy.config["train_micro_batch_size_per_gpu"] == 4  # not read from a batch_sampler
    assert uses_cpu_adam(compose_cfg("strategy=deepspeed_zero3_offload").strategy)
    assert not uses_cpu_adam(compose_cfg("strategy=deepspeed_zero3").strategy)
