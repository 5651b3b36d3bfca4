"""Build or load the Llama model and its tokenizer from the model config.

Planning builds the architecture on the `meta` device (no memory, no weights); training loads
pretrained weights from a hub id or a local directory, or builds the tiny model from scratch.
Missing weights fail before anything heavy, with the way to provide them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from lima_recipes.errors import ConfigError, WeightsNotFoundError
from lima_recipes.hub import hub_reachable

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ARCH_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


def llama_config(model_cfg, vocab_size: int | None = None) -> LlamaConfig:
    """The published architecture of a preset as a transformers LlamaConfig."""
    return LlamaConfig(
        vocab_size=vocab_size or model_cfg.vocab_size,
        hidden_size=model_cfg.hidden_size,
        intermediate_size=model_cfg.intermediate_size,
        num_hidden_layers=model_cfg.num_hidden_layers,
        num_attention_heads=model_cfg.num_attention_heads,
        num_key_value_heads=model_cfg.num_key_value_heads or model_cfg.num_attention_heads,
        max_position_embeddings=model_cfg.max_position_embeddings,
        rms_norm_eps=model_cfg.rms_norm_eps,
        rope_theta=model_cfg.rope_theta,
        tie_word_embeddings=model_cfg.tie_word_embeddings,
        bos_token_id=1,
        eos_token_id=2,
    )


def build_meta_model(model_cfg, vocab_size: int | None = None) -> LlamaForCausalLM:
    """The architecture with no storage: parameter counts of a 65B model in about a second."""
    with torch.device("meta"):
        return LlamaForCausalLM(llama_config(model_cfg, vocab_size))


def _is_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or Path(path).expanduser().exists()


HOW_TO_PROVIDE = (
    "pass model.path=/local/dir holding the Hugging Face files (config.json, *.safetensors, tokenizer), "
    "or a hub id you can reach (gated models: accept the licence on the hub and set HF_TOKEN)"
)


def check_weights_available(model_cfg) -> None:
    """Fail in under a second when the configured weights cannot be read, naming the fix."""
    if model_cfg.path is None:
        return
    path = str(model_cfg.path)
    if _is_local(path):
        local = Path(path).expanduser()
        if not (local / "config.json").is_file():
            raise WeightsNotFoundError(f"model.path={path}: no config.json there; {HOW_TO_PROVIDE}")
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


def load_tokenizer(model_cfg):
    """The base tokenizer (templates add their tokens afterwards)."""
    source = model_cfg.tokenizer_path or model_cfg.path
    if source is None:
        raise ConfigError(f"model={model_cfg.name}: set model.path or model.tokenizer_path")
    try:
        return AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise WeightsNotFoundError(f"tokenizer {source} cannot be loaded ({reason}); pass model.tokenizer_path=<dir or hub id>") from None


def build_model(model_cfg, tokenizer, seed: int) -> LlamaForCausalLM:
    """Pretrained weights from model.path, or a seeded random init of the preset's architecture;
    the embedding is then resized for the template's added tokens."""
    dtype = DTYPES[model_cfg.dtype]
    if model_cfg.path is not None:
        check_weights_available(model_cfg)
        model = LlamaForCausalLM.from_pretrained(
            str(model_cfg.path), dtype=dtype, attn_implementation=model_cfg.attn_implementation
        )
        mismatched = [
            f"{name}: preset {getattr(model_cfg, name)}, checkpoint {getattr(model.config, name)}"
            for name in ARCH_FIELDS
            if getattr(model.config, name) != getattr(model_cfg, name)
        ]
        if mismatched and model_cfg.name != "hf":
            raise ConfigError(
                f"model.path={model_cfg.path} is not a {model_cfg.name} ({'; '.join(mismatched)}); "
                "use model=hf for other architectures"
            )
    else:
        torch.manual_seed(seed)
        config = llama_config(model_cfg, vocab_size=max(model_cfg.vocab_size, len(tokenizer)))
        config._attn_implementation = model_cfg.attn_implementation
        model = LlamaForCausalLM(config).to(dtype)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        # New rows start at the mean of the existing embeddings, so the untrained end-of-turn
        # token does not dominate the softmax at the start of training.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.bos_token_id = tokenizer.bos_token_id
    model.config.use_cache = False
    return model
