"""LoRA adapters (peft) on a frozen base: which modules get them, which token rows train, what a
checkpoint keeps, and the merged weights an export writes.

The model stays a peft `PeftModel` while it trains, so peft's own tools apply to it (adapter-only
state dicts, `save_pretrained` in PEFT's format, `disable_adapter()` for a DPO reference). The
export is the plain Hugging Face model with every adapter folded into its base weight, computed
layer by layer from the live model without changing it: a kept epoch in the middle of training
must leave the weights training goes on with bit-identical, which merging in place and unmerging
afterwards (peft's `merge_adapter`/`unmerge_adapter`) would not, by rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from lima_recipes.errors import ConfigError

ADAPTER_NAME = "default"


def uses_adapter(adapter_cfg) -> bool:
    return adapter_cfg is not None and adapter_cfg.kind != "none"


def base_stays_fp32(strategy_cfg, adapter_cfg) -> bool:
    """Whether the frozen base is cast to fp32 like trained weights are. Under autocast precisions
    (bf16-mixed, 16-mixed) it stays in model.dtype: it never takes an update, so fp32 master
    weights would only double its memory."""
    from lima_recipes.train.strategies import keeps_fp32_master_weights

    if uses_adapter(adapter_cfg) and strategy_cfg.precision in ("bf16-mixed", "16-mixed"):
        return False
    return keeps_fp32_master_weights(strategy_cfg)


def template_token_ids(tokenizer, template) -> list[int]:
    """The template's end-of-turn token and the other tokens it adds: rows LIMA trains."""
    tokens = [template.end_of_turn(tokenizer), *template.extra_special_tokens]
    return sorted({tokenizer.convert_tokens_to_ids(t) for t in tokens})


def _module_name(model: nn.Module, target: nn.Module | None) -> str | None:
    if target is None:
        return None
    return next((name for name, module in model.named_modules() if module is target), None)


def lora_config(adapter_cfg, model: nn.Module, token_ids: list[int]):
    """peft's LoraConfig for this model. The template's token rows train in the input embedding
    and, when the output layer is its own matrix, in the output layer too (peft ties them when
    the model ties its embeddings)."""
    from peft import LoraConfig

    targets = list(adapter_cfg.target_modules)
    token_rows = None
    if adapter_cfg.train_template_tokens and token_ids:
        token_rows = {}
        embed = _module_name(model, model.get_input_embeddings())
        token_rows[embed.rsplit(".", 1)[-1]] = list(token_ids)
        if not getattr(model.config, "tie_word_embeddings", False):
            head = _module_name(model, model.get_output_embeddings())
            if head is not None:
                token_rows[head.rsplit(".", 1)[-1]] = list(token_ids)
    return LoraConfig(
        r=adapter_cfg.rank,
        lora_alpha=adapter_cfg.alpha,
        lora_dropout=adapter_cfg.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        trainable_token_indices=token_rows,
        bias="none",
        task_type="CAUSAL_LM",
    )


def apply_adapter(model: nn.Module, adapter_cfg, token_ids: list[int], seed: int) -> nn.Module:
    """Wrap the model in LoRA adapters (initialised under the run seed: B = 0, so the adapted
    model starts as the base), freezing everything else."""
    from peft import get_peft_model

    config = lora_config(adapter_cfg, model, token_ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            wrapped = get_peft_model(model, config, adapter_name=ADAPTER_NAME)
        except ValueError as err:  # e.g. a target module name the model does not have
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ConfigError(f"adapter.target_modules={list(adapter_cfg.target_modules)}: {reason}") from None
    return wrapped


def is_adapted(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def trainable_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of `state` (keys as the model names them) that training changes."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return {key: value for key, value in state.items() if key in trainable}


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The base model's state dict under its original names with every adapter folded in:
    W + (alpha / r) B A for LoRA layers, the trained rows for trainable tokens. Read-only."""
    from peft import get_base_model_state_dict
    from peft.tuners.lora import LoraLayer
    from peft.tuners.trainable_tokens import TrainableTokensLayer

    state = dict(get_base_model_state_dict(model))
    inner = model.base_model.model
    with torch.no_grad():
        for name, module in inner.named_modules():
            if isinstance(module, LoraLayer) and ADAPTER_NAME in module.lora_A:
                key, base = f"{name}.weight", module.get_base_layer().weight
                merged = base + module.get_delta_weight(ADAPTER_NAME).to(base.dtype)
            elif isinstance(module, TrainableTokensLayer) and not module.tied_adapter:
                key = f"{name.rsplit('.', 1)[0]}.weight"  # the wrapper stands where the embedding stood
                merged = module.get_merged_weights([ADAPTER_NAME])
            else:
                continue
            if key not in state:
                raise RuntimeError(f"{key}: an adapted weight the base model does not have (peft renamed its layers?)")
            state[key] = merged
    if getattr(inner.config, "tie_word_embeddings", False):
        # the output layer is the embedding: written once, as save_pretrained writes a tied model
        head = _module_name(inner, inner.get_output_embeddings())
        state.pop(f"{head}.weight", None)
    return state
