"""LoRA adapters: what trains, what a checkpoint keeps, what the export writes, and that a run
resumes exactly; QLoRA composes and plans on CPU and is refused there before anything loads."""

from __future__ import annotations

import copy

import pytest
import torch

LORA_RUN = ["adapter=lora", "trainer.max_epochs=2", "trainer.checkpoint_epochs=[1]", "trainer.enable_progress_bar=false",
            "trainer.micro_batch_size=8"]


def tiny_lora(compose_cfg, *overrides: str):
    """The tiny model (seed 0) wrapped in LoRA as training wraps it, with its tokenizer and config."""
    from lima_recipes.model.build import load_tokenizer
    from lima_recipes.train.run import make_model
    from lima_recipes.data.templates import build_template

    cfg = compose_cfg("adapter=lora", "run.seed=0", *overrides)
    tokenizer = load_tokenizer(cfg.model)
    build_template(cfg.template).install(tokenizer)
    return make_model(cfg, tokenizer), tokenizer, cfg


def perturb_adapters(model) -> None:
    """Non-zero B matrices and token rows: a freshly initialised adapter is the identity."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))


def test_lora_learning_rate_is_ten_times_the_presets(compose_cfg):
    full, lora = compose_cfg(), compose_cfg("adapter=lora")
    assert (full.optim.lr, full.optim.final_lr) == (3e-3, 3e-4)
    assert (lora.optim.lr, lora.optim.final_lr) == (3e-2, 3e-3)
    assert compose_cfg("adapter=lora", "model=llama65b").optim.lr == 1e-4


@pytest.mark.parametrize("override,expected", [
    ("adapter.rank=0", "adapter.rank=0 must be >= 1"),
    ("adapter.dropout=1.5", "adapter.dropout=1.5 must be in [0, 1)"),
    ("adapter.kind=dora", "adapter.kind"),
    ("strategy=fsdp", "adapter=lora runs with strategy=auto or ddp for now, not strategy=fsdp"),
])
def test_bad_adapter_settings_are_refused_naming_the_key(compose_cfg, override, expected):
    from lima_recipes.config import validate
    from lima_recipes.errors import ConfigError

    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        validate(compose_cfg("adapter=lora", override))


def test_qlora_plans_on_cpu_and_is_refused_there_before_loading(compose_cfg, monkeypatch):
    from lima_recipes.config.plan import make_plan
    from lima_recipes.errors import ConfigError
    from lima_recipes.train.run import check_accelerator

    cfg = compose_cfg("adapter=qlora", "model=llama7b", "model.path=/nonexistent")
    plan = make_plan(cfg, 1000, "given")
    assert plan.trainable_parameters < plan.parameters / 100
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="adapter=qlora needs a CUDA GPU .* on CPU use adapter=lora"):
        check_accelerator(cfg)


def test_plan_counts_lora_parameters_as_peft_builds_them(compose_cfg):
    """LLaMA-7B, rank 16 on every linear layer: r x (in + out) per matrix, counted by hand, plus
    the end-of-turn row of the embedding and of the untied output layer."""
    from lima_recipes.config.plan import make_plan

    h, i, layers, r = 4096, 11008, 32, 16
    per_layer = 4 * r * (h + h) + 3 * r * (h + i)
    full = make_plan(compose_cfg("model=llama7b", "model.path=/x"), 1000, "given")
    lora = make_plan(compose_cfg("model=llama7b", "model.path=/x", "adapter=lora"), 1000, "given")
    assert lora.trainable_parameters == layers * per_layer + 2 * h
    assert lora.parameters == full.parameters
    # no gradients or AdamW moments for the frozen base; last.ckpt holds the adapters alone
    assert lora.memory.gradients == pytest.approx(lora.trainable_parameters * 4)
    assert lora.memory.optimizer == pytest.approx(lora.trainable_parameters * 8)
    assert lora.disk.last_checkpoint == pytest.approx(lora.trainable_parameters * 12)
    assert lora.disk.kept_epoch == full.disk.kept_epoch  # the export is the whole merged model


def test_only_adapters_and_template_rows_train(compose_cfg):
    model, tokenizer, _ = tiny_lora(compose_cfg)
    eot = tokenizer.convert_tokens_to_ids("<|eot|>")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n or "trainable_tokens_delta" in n for n in trainable)
    assert {n for n in trainable if "trainable_tokens_delta" in n} == {
        "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta.default",
        "base_model.model.lm_head.token_adapter.trainable_tokens_delta.default"}
    assert model.base_model.model.model.embed_tokens.token_adapter.token_indices["default"] == [eot]
    # LIMA's residual dropout still sits on the (frozen) base's branches
    layers = model.base_model.model.model.layers
    assert layers[-1].residual_dropout == pytest.approx(0.2)
    assert layers[-1].self_attn._forward_hooks and layers[-1].mlp._forward_hooks


@pytest.mark.parametrize("tied", [False, True])
def test_merged_weights_equal_peft_merge_and_give_the_adapted_logits(compose_cfg, tied):
    from transformers import AutoModelForCausalLM

    from lima_recipes.model.adapter import merged_state_dict

    model, tokenizer, _ = tiny_lora(compose_cfg, f"model.tie_word_embeddings={str(tied).lower()}")
    assert model.config.tie_word_embeddings == tied
    perturb_adapters(model)
    model.eval()
    merged = merged_state_dict(model)
    reference = copy.deepcopy(model).merge_and_unload().state_dict()  # peft's own merge, on a copy
    reference.pop("lm_head.weight", None) if model.config.tie_word_embeddings else None
    assert merged.keys() == reference.keys()
    for key, value in reference.items():
        torch.testing.assert_close(merged[key], value, rtol=1e-6, atol=1e-7, msg=key)

    plain = AutoModelForCausalLM.from_config(model.config)
    plain.load_state_dict(merged, strict=not tied)  # a tied output layer is the embedding, not a key
    ids = torch.tensor([[1, 5, 9, 33, tokenizer.convert_tokens_to_ids("<|eot|>"), 7]])
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_lora_run_keeps_the_base_and_checkpoints_only_adapters(compose_cfg, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from lima_recipes.errors import ConfigError
    from lima_recipes.model.build import build_model, load_tokenizer
    from lima_recipes.data.templates import build_template
    from lima_recipes.train.convert import convert_checkpoint
    from lima_recipes.train.run import assemble, fit_and_export

    cfg = compose_cfg(*LORA_RUN, "adapter.save_adapter=true")
    run = assemble(cfg, tmp_path / "run")
    result = fit_and_export(cfg, tmp_path / "run", run.run_id, run.trainer, run.module, run.datamodule, run.checkpoints,
                            run.tokenizer, run.template)
    assert result["steps"] == 10

    # the frozen base is bit-identical to a fresh build of the same seed
    tokenizer = load_tokenizer(cfg.model)
    build_template(cfg.template).install(tokenizer)
    base = build_model(cfg.model, tokenizer, seed=cfg.run.seed).state_dict()
    from peft import get_base_model_state_dict

    trained_base = get_base_model_state_dict(run.module.model)
    assert trained_base.keys() == base.keys()
    assert all(torch.equal(trained_base[k], base[k]) for k in base)

    # last.ckpt holds the trained tensors alone, which moved; its AdamW state is theirs
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    trainable = {f"model.{n}" for n, p in run.module.model.named_parameters() if p.requires_grad}
    assert set(ckpt["state_dict"]) == trainable
    assert sum(len(s) for s in [ckpt["optimizer_states"][0]["state"]]) == len(trainable)
    assert any(v.abs().sum() > 0 for k, v in ckpt["state_dict"].items() if "lora_B" in k)

    # the export is the plain model with the adapters merged: same logits as the adapted model
    export = tmp_path / "run" / "export"
    plain = AutoModelForCausalLM.from_pretrained(export).eval()
    ids = torch.tensor([[1, 17, 40, 99, tokenizer.convert_tokens_to_ids("<|eot|>"), 3]])
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, run.module.model.eval()(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
    exported = load_file(export / "model.safetensors")
    norms = [k for k in base if "norm" in k]
    assert norms and all(torch.equal(exported[k], base[k]) for k in norms)  # not adapted, not changed
    assert not torch.equal(exported["model.layers.0.mlp.down_proj.weight"], base["model.layers.0.mlp.down_proj.weight"])
    assert (export / "adapter" / "adapter_config.json").is_file()  # peft's own format, on request
    assert (tmp_path / "run" / "checkpoints" / "epoch=01" / "model.safetensors").is_file()

    with pytest.raises(ConfigError, match="holds its .* trained tensors only"):
        convert_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", tmp_path / "converted", torch.float32)
    assert not (tmp_path / "converted").exists()


@pytest.mark.slow
def test_lora_resume_equals_an_uninterrupted_run(compose_cfg, tmp_path):
    from safetensors.torch import load_file

    from interrupt import stopped_after_step  # pytest puts tests/ on the import path
    from lima_recipes.train.run import run_training

    run = [*LORA_RUN, "trainer.micro_batch_size=2", "trainer.checkpoint_every_n_steps=1"]
    run_training(compose_cfg(*run), tmp_path / "a")

    with stopped_after_step(7):
        run_training(compose_cfg(*run), tmp_path / "b")
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 7
    assert run_training(compose_cfg(*run), tmp_path / "b")["steps"] == 10

    ours, theirs = load_file(tmp_path / "b" / "export" / "model.safetensors"), load_file(tmp_path / "a" / "export" / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.slow
def test_lora_under_ddp_on_two_processes_equals_one_process(compose_cfg, tmp_path):
    """8 examples a step: one process accumulates 2 x 4, two DDP ranks take 4 each; without
    dropout both give the same adapters, so the same merged export."""
    from safetensors.torch import load_file

    from lima_recipes.train.run import run_training
    from test_sharded import run_distributed  # pytest puts tests/ on the import path

    step = ["adapter=lora", "trainer.max_steps=2", "model.residual_dropout=0.0", "adapter.dropout=0.0", "trainer.micro_batch_size=4",
            "trainer.checkpoint_epochs=[]", "trainer.enable_progress_bar=false"]
    run_training(compose_cfg(*step), tmp_path / "single")
    proc = run_distributed("train", tmp_path / "ddp", "strategy=ddp", *step)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ours = load_file(tmp_path / "ddp" / "run" / "export" / "model.safetensors")
    theirs = load_file(tmp_path / "single" / "export" / "model.safetensors")
    assert ours.keys() == theirs.keys()
    trained = torch.load(tmp_path / "ddp" / "run" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert any(v.abs().sum() > 0 for k, v in trained.items() if "lora_B" in k)  # the adapters moved off their zero init
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=1e-6, msg=name)


def test_plan_never_suggests_a_sharded_layout_adapters_refuse(compose_cfg):
    from lima_recipes.config import validate
    from lima_recipes.config.fit import host_fix, smallest_fix

    cfg = compose_cfg("adapter=lora", "model=llama65b", "model.path=/x", "strategy.activation_checkpointing=true")
    fix = smallest_fix(cfg, 80 * 2**30)
    assert "fsdp" not in fix and fix.startswith("none yet: adapters run unsharded"), fix
    assert "fsdp" not in host_fix(cfg, 64 * 2**30)
    assert "strategy=fsdp" in smallest_fix(compose_cfg("model=llama65b", "model.path=/x", "strategy.activation_checkpointing=true"),
                                           80 * 2**30)
    validate(cfg)  # the configuration itself is valid; it just needs a bigger device
