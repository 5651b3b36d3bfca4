"""`make plan`: steps from the data, memory divided by the strategy's shards."""

from __future__ import annotations

import pytest

from lima_recipes.config.plan import count_examples, make_plan


def test_lima65b_plan_steps_from_the_expected_1000_examples(compose_cfg):
    cfg = compose_cfg("experiment=lima65b")  # 2 nodes x 8 GPUs
    examples, note = count_examples(cfg)  # GAIR/lima is not reachable in tests
    assert examples == 1000 and "expected_examples" in note
    plan = make_plan(cfg, examples, note)
    assert plan.parameters == 65_285_660_672
    assert plan.world_size == 16 and plan.steps_per_epoch == 32 and plan.total_steps == 480 and plan.accumulation == 2


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


def test_lima65b_verdicts_and_the_smallest_fix(compose_cfg):
    from lima_recipes.config.fit import verdicts

    one_node = {v.device: v for v in verdicts(compose_cfg("experiment=lima65b", "trainer.num_nodes=1"))}
    assert [v.fits for v in one_node.values()] == [False, False, False]
    assert one_node["80 GB (A100/H100 80GB)"].fix == "trainer.devices=8 trainer.num_nodes=2 (16 devices)"
    assert one_node["141 GB (H200)"].fix == "trainer.devices=8 trainer.num_nodes=2 (16 devices)"
    sized = {v.device: v for v in verdicts(compose_cfg("experiment=lima65b"))}  # the preset: 2 nodes x 8
    assert sized["80 GB (A100/H100 80GB)"].fits and sized["141 GB (H200)"].fits
    assert not sized["40 GB (A100 40GB)"].fits and sized["40 GB (A100 40GB)"].fix.startswith("strategy=fsdp_offload")
    unsharded = {v.device: v for v in verdicts(compose_cfg("model=llama65b"))}
    assert unsharded["80 GB (A100/H100 80GB)"].fix == "strategy=fsdp trainer.devices=8 trainer.num_nodes=2 (16 devices)"


@pytest.mark.parametrize("preset", ["llama7b", "llama13b", "llama33b", "llama65b", "llama2_7b", "llama2_13b", "llama2_70b",
                                    "llama3_8b", "llama3_70b", "qwen2_5_7b", "qwen2_5_0_5b", "mistral_7b", "smollm2_135m", "gemma3_270m"])
def test_each_preset_trains_on_the_hardware_it_names(compose_cfg, preset):
    """The recipe's hardware fits 80 GB GPUs, and a node fewer would not: the presets stay honest."""
    from lima_recipes.config.fit import Verdict, needed_bytes

    cfg = compose_cfg("experiment=lima7b", f"model={preset}")
    gpu = 80 * 1024**3
    assert Verdict("80GB", gpu, needed_bytes(cfg)).fits
    per_step = cfg.trainer.global_batch_size // cfg.trainer.micro_batch_size
    fewer = [n for n in range(1, cfg.trainer.num_nodes) if per_step % (n * cfg.trainer.devices) == 0]  # layouts that split the batch
    if fewer:
        assert not Verdict("80GB", gpu, needed_bytes(compose_cfg("experiment=lima7b", f"model={preset}",
                                                                  f"trainer.num_nodes={max(fewer)}"))).fits


def test_train_refuses_what_does_not_fit_before_reading_data_or_weights(compose_cfg, monkeypatch):
    from types import SimpleNamespace

    import torch

    from lima_recipes.errors import ConfigError
    from lima_recipes.train.run import prepare

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _: SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=80 * 1024**3))
    # model.path and GAIR/lima are unreachable here: reaching them would raise another error
    with pytest.raises(ConfigError, match=r"make plan: llama65b with strategy=fsdp on 8 device\(s\) needs about .* GiB per device "
                                          r"and NVIDIA H100 80GB HBM3 gives 72.0 GiB usable; smallest fix: trainer.devices=8 "
                                          r"trainer.num_nodes=2 \(16 devices\) \(trainer.check_memory=false runs it anyway\)"):
        prepare(compose_cfg("experiment=lima65b", "trainer.num_nodes=1"))
    with pytest.raises(Exception) as passed:
        prepare(compose_cfg("experiment=lima65b", "trainer.num_nodes=1", "trainer.check_memory=false"))
    assert "make plan" not in str(passed.value)


def test_plan_counts_host_memory_at_load_and_checkpoint_sizes(compose_cfg):
    cfg = compose_cfg("experiment=lima65b")
    plan = make_plan(cfg, 1000, "")
    p = plan.trainable_parameters
    assert plan.disk.last_checkpoint == 12 * p  # fp32 weights + two AdamW moments, sharded over the ranks' files
    assert plan.disk.kept_epoch == 2 * p and plan.disk.kept_epochs == 6  # bf16 HF directories of epochs 5-10
    assert 2 * p < plan.disk.host_load_per_node < 2 * p + 8 * 2 * 1024**3  # rank 0's mapped bf16 file + a group per rank
    per_rank = make_plan(compose_cfg("experiment=lima65b", "strategy.load=per_rank"), 1000, "")
    assert per_rank.disk.host_load_per_node < 0.6 * plan.disk.host_load_per_node  # each node reads half the file
    every_rank = make_plan(compose_cfg("model=llama65b", "strategy=ddp", "trainer.devices=8"), 1000, "")
    assert every_rank.disk.host_load_per_node == 8 * p * (2 + 4)  # from_pretrained in bf16 + the fp32 copy, per rank


def test_a_checkpoint_too_large_for_host_ram_is_refused_with_the_loading_that_fits(compose_cfg, monkeypatch):
    from types import SimpleNamespace

    import psutil
    import torch

    from lima_recipes.config.fit import host_verdict
    from lima_recipes.errors import ConfigError
    from lima_recipes.train.run import prepare

    GiB = 1024**3
    ddp = compose_cfg("model=llama65b", "strategy=ddp", "trainer.devices=8")
    assert host_verdict(ddp, 2048 * GiB).fix == "strategy=fsdp"  # 8 bf16 copies + fp32 masters: 3 TB
    sharded = compose_cfg("experiment=lima65b")  # 2 nodes: per_rank maps half the checkpoint per node
    assert host_verdict(sharded, 512 * GiB).fits
    assert host_verdict(sharded, 100 * GiB).fix == "strategy.load=per_rank"
    assert host_verdict(sharded, 16 * GiB).fix.startswith("hosts with more RAM")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _: SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=80 * 1024**3))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=100 * GiB))
    with pytest.raises(ConfigError, match=r"make plan: loading model.path=\S+ \(llama65b, strategy=fsdp\) needs about 1\d\d.\d GiB of host "
                                          r"RAM per node and this host has 90.0 GiB usable; smallest fix: strategy.load=per_rank"):
        prepare(sharded)
