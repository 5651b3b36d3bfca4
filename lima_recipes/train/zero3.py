"""DeepSpeed ZeRO-3 models that no rank holds whole: built from the config (vocabulary already
grown) inside the `zero.Init` Lightning opens around `configure_model`, then filled from rank 0's
lazily read safetensors by transformers' own ZeRO-3 loader, one module at a time.

`from_pretrained` inside Lightning's `zero.Init` fails ("You set ignore_mismatched_sizes to
False", Lightning #19259) and so does `resize_token_embeddings` there (the new embedding is
partitioned as it is built): the end-of-turn rows are drawn first, on rank 0, with DeepSpeed's
construction hooks set aside, exactly as `resize_token_embeddings(mean_resizing=True)` draws them.
transformers only partitions while an `HfDeepSpeedConfig` is alive (it holds it by weakref), so
the model keeps a reference to it. The loader is a private transformers helper: pyproject pins the
range it is tested on.
"""

from __future__ import annotations

import torch
from torch import nn


def _ds_shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(getattr(tensor, "ds_shape", tensor.shape))


def build_zero3_model(cfg, tokenizer, ds_config: dict, load: bool = True) -> nn.Module:
    """Called inside `deepspeed.zero.Init` (Lightning's `model_sharded_context`, or a test's)."""
    import torch.distributed as dist
    from deepspeed.runtime.zero.partition_parameters import restore_init_context, shutdown_init_context
    from transformers import AutoModelForCausalLM
    from transformers.integrations import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import _load_state_dict_into_zero3_model

    from lima_recipes.model.build import (DTYPES, build_model, finish_config, grown_vocab_size,
                                          local_checkpoint_dir, pretrained_config, scratch_config, training_form)
    from lima_recipes.model.hf_files import SafetensorsDir
    from lima_recipes.train.sharded import grown_vocab_rows

    m = cfg.model
    dtype = DTYPES[m.dtype]
    rank0 = dist.get_rank() == 0
    config = pretrained_config(m) if m.path is not None else scratch_config(m, tokenizer)
    config.vocab_size = grown_vocab_size(config, tokenizer)
    config._attn_implementation = m.attn_implementation

    full: dict[str, torch.Tensor] = {}
    if load and rank0:
        shutdown_init_context()  # plain tensors and modules on rank 0 while it prepares the weights
        try:
            if m.path is None:
                full = build_model(m, tokenizer, seed=cfg.run.seed).to(dtype).state_dict()
            else:
                files = SafetensorsDir(local_checkpoint_dir(m))
                with torch.device("meta"):
                    helper = AutoModelForCausalLM.from_config(config)
                grown = grown_vocab_rows(helper, files, dtype, config.vocab_size, cfg.run.seed, bool(config.tie_word_embeddings))
                full = {name: grown[name] if name in grown else files.get(name).to(dtype) for name in files.weight_map
                        if not name.endswith("rotary_emb.inv_freq")}
        finally:
            restore_init_context()

    keep_alive = HfDeepSpeedConfig(ds_config)
    model = AutoModelForCausalLM.from_config(config)
    finish_config(model.config, tokenizer)  # after construction, as on one process: no padding_idx in the embedding
    model._lima_hf_deepspeed_config = keep_alive  # transformers holds it by weakref only
    if load:
        # every rank must name the same tensors: the loader gathers each named parameter collectively
        shapes = {name: _ds_shape(t) for name, t in model.state_dict().items()}
        full = {name: tensor for name, tensor in full.items() if name in shapes}
        names = [sorted(full)]
        dist.broadcast_object_list(names, src=0)
        state = full if rank0 else {name: torch.empty(shapes[name], device="meta") for name in names[0]}
        errors, missing = _load_state_dict_into_zero3_model(model, state)
        if errors or (rank0 and missing - set(_tied_keys(model))):
            raise RuntimeError(f"ZeRO-3 load: errors {errors[:2]}, missing {sorted(missing)[:3]}")
    training_form(model, m, cfg.strategy, dropout=cfg.stage.dropout)
    return model


def _tied_keys(model) -> list[str]:
    return ["lm_head.weight"] if model.config.tie_word_embeddings else []
