"""FSDP2 models that no rank ever holds whole: build on `meta`, shard each decoder layer and then
the root, materialise the local shards, re-create the buffers no state dict carries, then load.

Loading has two modes. `broadcast` (one node): rank 0 reads the safetensors lazily, a group of
tensors at a time, and `set_model_state_dict(..., broadcast_from_rank0=True)` sends each tensor
on, every rank keeping its slice. `per_rank` (many nodes): each rank reads only its own slices
from the files (`HuggingFaceStorageReader`), so no link carries the whole checkpoint. Either way
the end-of-turn rows are drawn on rank 0 exactly as `resize_token_embeddings(mean_resizing=True)`
would, under the run seed, and the weights pass through `model.dtype` as `from_pretrained(dtype=)`
does on the single-process path: both paths train the same numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import nn

from lima_recipes.errors import ConfigError, LimaError, WeightsNotFoundError
from lima_recipes.model.layers import decoder_layers

log = logging.getLogger(__name__)

VOCAB_KEYS = ("model.embed_tokens.weight", "lm_head.weight")
"""The two tensors that grow for the template's tokens; every other tensor is read as stored."""
BROADCAST_GROUP_BYTES = 2 * 1024**3
"""Rank 0 materialises at most this much of the checkpoint at a time while broadcasting."""


def fsdp_mesh(lightning_mesh, hybrid: bool, num_nodes: int):
    """1-D over every rank (FULL_SHARD, SHARD_GRAD_OP), or (replicate across nodes, shard within a
    node) for HYBRID_SHARD, so that all-gathers and reduce-scatters stay on the node's links."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if not hybrid:
        return lightning_mesh["data_parallel"]
    world = dist.get_world_size()
    if world % num_nodes:
        raise ConfigError(f"strategy.sharding_strategy=HYBRID_SHARD: {world} ranks do not split into trainer.num_nodes={num_nodes} nodes")
    return init_device_mesh(lightning_mesh.device_type, (num_nodes, world // num_nodes), mesh_dim_names=("replicate", "shard"))


def shard(model: nn.Module, mesh, strategy_cfg) -> None:
    """`fully_shard` per decoder layer, then the root: each layer is one all-gather in forward
    and one reduce-scatter in backward. bf16-mixed computes in bf16 from fp32 shards and reduces
    gradients in fp32 (no bf16 rounding of the summed gradients)."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    kwargs = {"mesh": mesh, "reshard_after_forward": strategy_cfg.sharding_strategy != "SHARD_GRAD_OP",
              "offload_policy": CPUOffloadPolicy(pin_memory=mesh.device_type == "cuda") if strategy_cfg.cpu_offload else OffloadPolicy()}
    if strategy_cfg.precision in ("bf16-mixed", "16-mixed"):
        half = torch.bfloat16 if strategy_cfg.precision == "bf16-mixed" else torch.float16
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=half, reduce_dtype=torch.float32)
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)


def materialise(model: nn.Module, device: torch.device, offload: bool) -> None:
    """Storage for the local shards (uninitialised), then the non-persistent buffers, which no
    state dict carries: RoPE's `inv_freq` left as garbage still passes a state-dict check and
    silently trains a wrong model. transformers' own `_init_weights` recomputes them for every
    rope type."""
    model.to_empty(device=torch.device("cpu") if offload else device)
    with torch.no_grad():
        for module in model.modules():
            if module._non_persistent_buffers_set:
                model._init_weights(module)
                if offload:  # sharded parameters live on the host, buffers where compute runs
                    for name in module._non_persistent_buffers_set:
                        setattr(module, name, getattr(module, name).to(device))


def check_materialised(model: nn.Module) -> None:
    """No tensor left on meta (NaN losses), no non-finite buffer (a RoPE left uninitialised)."""
    on_meta = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if on_meta:
        raise RuntimeError(f"sharded model left on the meta device: {', '.join(on_meta[:3])}")
    for module_name, module in model.named_modules():
        for name in module._non_persistent_buffers_set:
            buffer = getattr(module, name)
            if buffer is not None and buffer.is_floating_point() and not torch.isfinite(buffer).all():
                raise RuntimeError(f"buffer {module_name}.{name} is not finite after materialisation")


def state_groups(model: nn.Module, budget: int = BROADCAST_GROUP_BYTES) -> list[list[str]]:
    """The model's tensor names in groups of at most `budget` bytes (full, unsharded sizes): the
    same on every rank, since every rank holds the same DTensor shapes."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    groups, used = [[]], 0
    for name, tensor in get_model_state_dict(model).items():
        size = tensor.numel() * tensor.element_size()
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(name)
        used += size
    return groups


def broadcast_from_rank0(model: nn.Module, groups: list[list[str]], tensors: Iterator[dict[str, torch.Tensor]] | None) -> None:
    """Rank 0 passes one dict per group (its full tensors); the others pass None and receive."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
    for group in groups:
        full = next(tensors) if dist.get_rank() == 0 else {}
        if dist.get_rank() == 0 and set(full) != set(group):
            raise RuntimeError(f"rank 0 read {sorted(set(group) ^ set(full))[:3]} out of step with the model's groups")
        set_model_state_dict(model, full, options=options)
        del full


def read_groups(groups: list[list[str]], source) -> Iterator[dict[str, torch.Tensor]]:
    for group in groups:
        yield {name: source(name) for name in group}


def round_through(model: nn.Module, dtype: torch.dtype) -> None:
    """Round fp32 shards to what `from_pretrained(dtype=...)` then `.float()` would hold."""
    with torch.no_grad():
        for param in model.parameters():
            if param.dtype != dtype and param.is_floating_point():
                param.copy_(param.to(dtype).to(param.dtype))


def grown_vocab_rows(model: nn.Module, files, dtype: torch.dtype, num_tokens: int, seed: int, tied: bool) -> dict[str, torch.Tensor]:
    """The embedding (and output layer) with the template's rows added, drawn by transformers'
    own resize helpers in the order and under the seed `grow_vocabulary` uses: only these two
    tensors are ever whole on rank 0."""
    embed = files.get(VOCAB_KEYS[0]).to(dtype)
    if embed.shape[0] >= num_tokens:
        return {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        grown = {VOCAB_KEYS[0]: model._get_resized_embeddings(nn.Embedding.from_pretrained(embed, freeze=False), num_tokens,
                                                               mean_resizing=True).weight.data}
        if tied:  # one tensor under both names, as the tied model holds it
            grown[VOCAB_KEYS[1]] = grown[VOCAB_KEYS[0]]
        else:
            head = nn.utils.skip_init(nn.Linear, embed.shape[1], embed.shape[0], bias=False)
            head.weight = nn.Parameter(files.get(VOCAB_KEYS[1]).to(dtype))
            grown[VOCAB_KEYS[1]] = model._get_resized_lm_head(head, num_tokens, mean_resizing=True).weight.data
    return grown


def load_pretrained(model: nn.Module, directory, mode: str, dtype: torch.dtype, num_tokens: int, seed: int) -> None:
    """The checkpoint's weights into the materialised shards (see the module docstring)."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict

    from lima_recipes.model.hf_files import SafetensorsDir

    rank0 = dist.get_rank() == 0
    tied = bool(model.config.tie_word_embeddings)
    names = list(get_model_state_dict(model))
    files, grown, problem = None, {}, None
    if rank0:
        try:
            files = SafetensorsDir(directory)
            grown = grown_vocab_rows(model, files, dtype, num_tokens, seed, tied)
            missing = [n for n in names if n not in grown and n not in files and not (tied and n == VOCAB_KEYS[1])]
            if missing:
                problem = f"model.path={directory}: the checkpoint has no tensor {missing[0]!r} ({len(missing)} missing)"
        except LimaError as err:
            problem = str(err)
    # the other ranks wait in collectives for rank 0: a problem it finds must stop them too
    shared = [problem]
    dist.broadcast_object_list(shared, src=0)
    if shared[0]:
        raise WeightsNotFoundError(shared[0])
    if mode == "broadcast":
        def read(name: str) -> torch.Tensor:
            if tied and name == VOCAB_KEYS[1] and name not in files:
                name = VOCAB_KEYS[0]  # a tied checkpoint stores the embedding once
            return grown[name] if name in grown else files.get(name).to(dtype)

        groups = state_groups(model)
        broadcast_from_rank0(model, groups, read_groups(groups, read) if rank0 else None)
        return
    grows = [name for name in VOCAB_KEYS if name in names] if num_tokens > _stored_vocab(directory) else []
    state = {k: v for k, v in get_model_state_dict(model).items() if k not in grows and not (tied and k == VOCAB_KEYS[1])}
    dcp.load(state, storage_reader=HuggingFaceStorageReader(str(directory)))
    set_model_state_dict(model, state, options=StateDictOptions(strict=False))
    if grows:
        broadcast_from_rank0(model, [grows], iter([grown]) if rank0 else None)
    round_through(model, dtype)


def _stored_vocab(directory) -> int:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(directory)).vocab_size


def load_scratch(model: nn.Module, build_full) -> None:
    """A model trained from scratch: rank 0 draws the single-process init and broadcasts it, so
    sharded and unsharded runs start from the same weights."""
    import torch.distributed as dist

    groups = state_groups(model)
    full = build_full().state_dict() if dist.get_rank() == 0 else None
    broadcast_from_rank0(model, groups, read_groups(groups, full.__getitem__) if full is not None else None)


def build_sharded_model(cfg, tokenizer, placement) -> nn.Module:
    """The FSDP2 model factory: what `make_model` builds on one device, sharded without any rank
    holding it whole. A resumed run skips the pretrained load: the checkpoint restores every
    weight after setup (buffers are still re-created, they are in no checkpoint)."""
    from transformers import AutoModelForCausalLM

    from lima_recipes.model.build import (DTYPES, build_model, finish_config, grown_vocab_size,
                                          local_checkpoint_dir, pretrained_config, scratch_config, training_form)
    from lima_recipes.train.strategies import keeps_fp32_master_weights

    m, s = cfg.model, cfg.strategy
    dtype = DTYPES[m.dtype]
    param_dtype = torch.float32 if keeps_fp32_master_weights(s) else dtype
    config = pretrained_config(m) if m.path is not None else scratch_config(m, tokenizer)
    config.vocab_size = grown_vocab_size(config, tokenizer)
    config._attn_implementation = m.attn_implementation
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config).to(param_dtype)
    finish_config(model.config, tokenizer)  # after construction, as on one process: no padding_idx in the embedding
    training_form(model, m, s, dropout=cfg.stage.dropout)
    shard(model, fsdp_mesh(placement.mesh, s.sharding_strategy == "HYBRID_SHARD", cfg.trainer.num_nodes), s)
    materialise(model, placement.device, s.cpu_offload)
    if not placement.resuming:
        if m.path is None:
            load_scratch(model, lambda: build_model(m, tokenizer, seed=cfg.run.seed).to(param_dtype))
        else:
            load_pretrained(model, local_checkpoint_dir(m), s.load, dtype, config.vocab_size, cfg.run.seed)
    check_materialised(model)
    return model
