"""`make plan`: steps from the data, memory divided by the strategy's shards."""

from __future__ import annotations

from lima_recipes.config.plan import count_examples, make_plan


def test_lima65b_plan_steps_from_the_expected_1000_examples(compose_cfg):
    cfg = compose_cfg("experiment=lima65b", "trainer.devices=8")
    examples, note = count_examples(cfg)  # GAIR/lima is not reachable in tests
    assert examples == 1000 and "expected_examples" in note
    plan = make_plan(cfg, examples, note)
    assert plan.parameters == 65_285_660_672
    assert plan.steps_per_epoch == 32 and plan.total_steps == 480 and plan.accumulation == 4


def test_sample_data_is_counted_from_the_file(compose_cfg):
    examples, note = count_examples(compose_cfg())
    assert examples == 40 and "train.jsonl" in note


def test_sharding_divides_state_and_offload_moves_it_to_cpu(compose_cfg):
    ddp = make_plan(compose_cfg("model=llama7b", "strategy=ddp", "trainer.devices=8"), 1000, "")
    fsdp = make_plan(compose_cfg("model=llama7b", "strategy=fsdp", "trainer.devices=8"), 1000, "")
    zero2 = make_plan(compose_cfg("model=llama7b", "strategy=deepspeed_zero2", "trainer.devices=8"), 1000, "")
    offload = make_plan(compose_cfg("model=llama7b", "strategy=deepspeed_zero3_offload", "trainer.devices=8"), 1000, "")
    p = ddp.trainable_parameters
    assert ddp.memory.optimizer == 8 * p and ddp.memory.gradients == 4 * p
    assert fsdp.memory.optimizer == 8 * p / 8 and fsdp.memory.gradients == 4 * p / 8
    assert zero2.memory.optimizer == 12 * p / 8 and zero2.memory.weights == 2 * p
    assert offload.memory.optimizer == 0 and offload.memory.cpu_offloaded > 0
    ckpt = make_plan(compose_cfg("model=llama7b", "strategy=fsdp", "strategy.activation_checkpointing=false"), 1000, "")
    assert ckpt.memory.activations > fsdp.memory.activations
