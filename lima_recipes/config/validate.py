"""Cross-group checks that the schemas alone cannot express; all problems are reported at once."""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

from lima_recipes.errors import ConfigError

FORMATS = ("auto", "lima", "messages", "prompt_response", "alpaca", "preference")
STAGE_KINDS = ("sft", "dpo")
ON_INVALID = ("error", "skip")
STRATEGY_KINDS = ("auto", "ddp", "fsdp", "deepspeed")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true")
DTYPES = ("float32", "bfloat16", "float16")
SHARDING = ("FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD")
LOADS = ("broadcast", "per_rank")
ADAPTER_KINDS = ("none", "lora", "qlora")
QUANT_TYPES = ("nf4", "fp4")


def _one_of(problems: list[str], key: str, value, allowed) -> None:
    if value not in allowed:
        problems.append(f"{key}={value!r} is not one of {', '.join(map(str, allowed))}")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError listing every problem; each names the key, the bad value and the fix."""
    problems: list[str] = []
    missing = sorted(_missing_keys(cfg))
    for key in missing:
        fix = {
            "model.path": "pass model.path=<hub id or local directory>",
            "data.path": "pass data.path=<file.jsonl>",
        }.get(key, f"pass {key}=<value>")
        problems.append(f"{key} is required ({fix})")
    if missing:
        raise ConfigError(problems)

    m, d, t, s, o, tr = cfg.model, cfg.data, cfg.template, cfg.strategy, cfg.optim, cfg.trainer

    if d.max_length > m.max_position_embeddings:
        problems.append(
            f"data.max_length={d.max_length} exceeds model.max_position_embeddings="
            f"{m.max_position_embeddings} (lower data.max_length)"
        )
    if d.max_length < 16:
        problems.append(f"data.max_length={d.max_length} is too short to hold a turn (use >= 16)")
    if d.path is None and d.hub_id is None:
        problems.append(f"data={d.name} needs a source: pass data.path=<file.jsonl> (or data.hub_id=<dataset id>)")
    _one_of(problems, "data.format", d.format, FORMATS)
    _one_of(problems, "data.on_invalid", d.on_invalid, ON_INVALID)
    if d.max_user_turns is not None and d.max_user_turns < 1:
        problems.append(f"data.max_user_turns={d.max_user_turns} must be >= 1 or null")
    if d.megabatch_factor < 1 or d.pad_to_multiple_of < 1:
        problems.append("data.megabatch_factor and data.pad_to_multiple_of must be >= 1")

    if m.architecture_from_checkpoint and m.path is None:
        problems.append(f"model={m.name} reads its architecture from a checkpoint: pass model.path=<hub id or local directory>")
    elif m.path is None and m.tokenizer_path is None:
        problems.append(
            f"model={m.name} needs weights: pass model.path=<hub id or local directory> "
            "(or model.tokenizer_path=<tokenizer> to train the architecture from scratch)"
        )
    if m.gguf_file and m.path is None:
        problems.append(f"model.gguf_file={m.gguf_file} is read from model.path: pass model.path=<the folder holding it>")
    _one_of(problems, "model.dtype", m.dtype, DTYPES)
    if not 0.0 <= m.residual_dropout < 1.0:
        problems.append(f"model.residual_dropout={m.residual_dropout} must be in [0, 1)")
    if m.hidden_size % m.num_attention_heads:
        problems.append(
            f"model.hidden_size={m.hidden_size} is not divisible by model.num_attention_heads="
            f"{m.num_attention_heads}"
        )
    kv = m.num_key_value_heads or m.num_attention_heads
    if m.num_attention_heads % kv:
        problems.append(
            f"model.num_attention_heads={m.num_attention_heads} is not a multiple of "
            f"model.num_key_value_heads={kv}"
        )

    if t.name == "model" and t.eot_token is not None and t.extra_special_tokens:
        problems.append("template=model uses the tokenizer's own tokens; leave template.extra_special_tokens empty")

    _one_of(problems, "strategy.kind", s.kind, STRATEGY_KINDS)
    _one_of(problems, "strategy.precision", s.precision, PRECISIONS)
    _one_of(problems, "strategy.sharding_strategy", s.sharding_strategy, SHARDING)
    _one_of(problems, "strategy.load", s.load, LOADS)
    if s.timeout_minutes < 1:
        problems.append(f"strategy.timeout_minutes={s.timeout_minutes} must be >= 1")
    if s.kind == "deepspeed" and s.zero_stage not in (1, 2, 3):
        problems.append(f"strategy.zero_stage={s.zero_stage} must be 1, 2 or 3 for DeepSpeed")
    if s.kind == "deepspeed" and s.compile:
        problems.append(f"strategy.compile=true is not supported with strategy={s.name} (DeepSpeed); use strategy=fsdp or set strategy.compile=false")

    if "adapter" in cfg:
        _check_adapter(problems, cfg.adapter, s)
    if "stage" in cfg:
        _check_stage(problems, cfg.stage, m, d, s)

    if o.lr <= 0 or o.final_lr < 0:
        problems.append(f"optim.lr={o.lr} must be > 0 and optim.final_lr={o.final_lr} >= 0")
    elif o.final_lr > o.lr:
        problems.append(f"optim.final_lr={o.final_lr} exceeds optim.lr={o.lr} (the schedule decays)")
    if len(o.betas) != 2 or not all(0.0 <= b < 1.0 for b in o.betas):
        problems.append(f"optim.betas={list(o.betas)} must be two values in [0, 1)")
    if o.warmup_steps < 0 or o.weight_decay < 0:
        problems.append("optim.warmup_steps and optim.weight_decay must be >= 0")

    world = tr.devices * tr.num_nodes
    if tr.micro_batch_size < 1 or tr.devices < 1 or tr.num_nodes < 1:
        problems.append("trainer.micro_batch_size, trainer.devices and trainer.num_nodes must be >= 1")
    elif tr.global_batch_size % (tr.micro_batch_size * world):
        problems.append(
            f"trainer.global_batch_size={tr.global_batch_size} is not a multiple of "
            f"trainer.micro_batch_size={tr.micro_batch_size} x {world} devices "
            f"(trainer.devices={tr.devices} x trainer.num_nodes={tr.num_nodes}); choose a "
            f"micro_batch_size that divides {tr.global_batch_size // max(world, 1) or 1}"
        )
    _one_of(problems, "trainer.save_dtype", tr.save_dtype, DTYPES)
    if tr.max_epochs < 1 and tr.max_steps < 1:
        problems.append("trainer.max_epochs or trainer.max_steps must be >= 1")
    if any(e < 1 for e in tr.checkpoint_epochs):
        problems.append(f"trainer.checkpoint_epochs={list(tr.checkpoint_epochs)} are 1-based epochs (>= 1)")
    if tr.export_epoch is not None and tr.export_epoch not in tr.checkpoint_epochs:
        problems.append(
            f"trainer.export_epoch={tr.export_epoch} is not kept; add it to trainer.checkpoint_epochs "
            f"({list(tr.checkpoint_epochs)}) or set trainer.export_epoch=null"
        )
    if tr.export_epoch is not None and tr.max_steps <= 0 and tr.export_epoch > tr.max_epochs:
        problems.append(
            f"trainer.export_epoch={tr.export_epoch} is after the last epoch (trainer.max_epochs={tr.max_epochs}); "
            "lower it or set trainer.export_epoch=null to export the final weights"
        )
    if s.kind == "deepspeed" and tr.accelerator == "cpu":
        problems.append(f"strategy={s.name} needs CUDA GPUs; on CPU use strategy=ddp or strategy=auto")
    if "eval" in cfg:
        problems += _after_training_problems(cfg)
    if problems:
        raise ConfigError(problems)


def _after_training_problems(cfg: DictConfig) -> list[str]:
    """What runs after training is checked before it, so a 15-epoch run never ends on a typo."""
    ev, tr, problems = cfg.eval, cfg.trainer, []
    if ev.kind not in ("none", "dev_select", "generate", "likert", "absolute"):
        problems.append(f"eval={ev.name} compares two generation files: run `make eval eval={ev.name} ours=... baseline=...`; "
                        "after training eval=generate, likert, absolute or dev_select (or none) runs")
    if ev.kind in ("likert", "absolute") and cfg.judge.kind == "none":
        problems.append(f"eval={ev.name} after training needs a judge: judge=openai (any OpenAI-compatible server) or "
                        "judge=hf; eval=generate gives the automatic metrics without one")
    if ev.kind != "none" and ev.num_samples < 1:
        problems.append(f"eval.num_samples={ev.num_samples} must be >= 1")
    if ev.kind == "dev_select":
        not_kept = [e for e in ev.epochs if e not in tr.checkpoint_epochs]
        if not_kept:
            problems.append(f"eval.epochs={list(ev.epochs)}: epochs {not_kept} are not in trainer.checkpoint_epochs="
                            f"{list(tr.checkpoint_epochs)}, so their checkpoints will not exist")
    if ev.kind in ("dev_select", "likert", "absolute"):
        if cfg.judge.kind == "openai" and not os.environ.get(cfg.judge.api_key_env):
            problems.append(f"judge=openai needs an API key: set {cfg.judge.api_key_env} "
                            "(or name the variable that holds it with judge.api_key_env)")
    return problems


def _missing_keys(cfg: DictConfig) -> list[str]:
    return list(_walk_missing(cfg, ""))


def _walk_missing(node: DictConfig, prefix: str):
    for key in node.keys():
        if key == "hydra":
            continue
        full = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            yield full
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            yield from _walk_missing(child, full + ".")


def _check_stage(problems: list[str], st, m, d, s) -> None:
    from lima_recipes.model.preference_loss import LOSS_TYPES

    _one_of(problems, "stage.kind", st.kind, STAGE_KINDS)
    if st.lr_scale <= 0 or st.max_epochs < 1:
        problems.append(f"stage.lr_scale={st.lr_scale} must be > 0 and stage.max_epochs={st.max_epochs} >= 1")
    if st.kind == "sft":
        if d.format == "preference":
            problems.append("data.format=preference holds chosen/rejected pairs: train them with stage=dpo")
        return
    _one_of(problems, "stage.loss", st.loss, LOSS_TYPES)
    if st.beta <= 0 or st.sft_weight < 0:
        problems.append(f"stage.beta={st.beta} must be > 0 and stage.sft_weight={st.sft_weight} >= 0")
    if d.format not in ("auto", "preference"):
        problems.append(f"stage=dpo reads preference pairs ({{prompt, chosen, rejected}}), not data.format={d.format}: "
                        "use data.format=preference (or auto)")
    if m.path is None:
        problems.append(f"stage=dpo starts from a trained model, which is also its reference: pass model.path=<SFT run>/export "
                        f"(model={m.name} has no weights to start from)")
    if s.kind == "deepspeed":
        problems.append(f"stage=dpo runs with strategy=auto, ddp or fsdp for now, not strategy={s.name}: "
                        "DeepSpeed cannot be tested without GPUs")


def _check_adapter(problems: list[str], a, s) -> None:
    _one_of(problems, "adapter.kind", a.kind, ADAPTER_KINDS)
    if a.kind == "none":
        return
    if a.rank < 1 or a.alpha <= 0:
        problems.append(f"adapter.rank={a.rank} must be >= 1 and adapter.alpha={a.alpha} > 0")
    if not 0.0 <= a.dropout < 1.0:
        problems.append(f"adapter.dropout={a.dropout} must be in [0, 1)")
    if not a.target_modules:
        problems.append("adapter.target_modules is empty: name the modules to adapt, or [all-linear]")
    if a.lr_scale <= 0:
        problems.append(f"adapter.lr_scale={a.lr_scale} must be > 0")
    _one_of(problems, "adapter.quant_type", a.quant_type, QUANT_TYPES)
    if s.kind in ("fsdp", "deepspeed"):
        problems.append(f"adapter={a.name} runs with strategy=auto or ddp for now, not strategy={s.name}: "
                        "its sharded path is not built yet")
