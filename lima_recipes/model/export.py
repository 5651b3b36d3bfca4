"""Write a model that plain `transformers` loads: safetensors weights, the tokenizer with its chat
template, and a generation config holding LIMA's decoding with the end-of-turn token as EOS."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import GenerationConfig


def generation_config(generation_cfg, tokenizer, eot_token: str) -> GenerationConfig:
    return GenerationConfig(
        do_sample=generation_cfg.do_sample,
        top_p=generation_cfg.top_p,
        temperature=generation_cfg.temperature,
        repetition_penalty=generation_cfg.repetition_penalty,
        max_new_tokens=generation_cfg.max_new_tokens,
        eos_token_id=tokenizer.convert_tokens_to_ids(eot_token),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )


def strip_module_prefix(state_dict: dict[str, torch.Tensor], prefix: str = "model.") -> dict[str, torch.Tensor]:
    """LightningModule keys (`model.model.layers...`) -> transformers keys (`model.layers...`)."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def export_model(model, tokenizer, eot_token: str, generation_cfg, out_dir: str | Path,
                 state_dict: dict[str, torch.Tensor] | None = None, metadata: dict | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.use_cache = True
    model.save_pretrained(out_dir, state_dict=state_dict)
    tokenizer.save_pretrained(out_dir)
    generation_config(generation_cfg, tokenizer, eot_token).save_pretrained(out_dir)
    if metadata:
        (out_dir / "lima_recipes.json").write_text(json.dumps(metadata, indent=2, default=str))
    return out_dir


def load_checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """transformers-named weights from a Lightning checkpoint file, or from a DeepSpeed checkpoint
    directory (consolidated from its ZeRO partitions into fp32)."""
    path = Path(path)
    if path.is_dir():
        import tempfile

        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

        with tempfile.TemporaryDirectory() as tmp:
            convert_zero_checkpoint_to_fp32_state_dict(str(path), f"{tmp}/weights.pt")
            checkpoint = torch.load(f"{tmp}/weights.pt", map_location="cpu", weights_only=False)
    else:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return strip_module_prefix(checkpoint["state_dict"])
