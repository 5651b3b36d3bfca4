"""Write a model that plain `transformers` loads: safetensors weights, the tokenizer with its chat
template, and a generation config holding LIMA's decoding with the end-of-turn token as EOS."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from transformers import GenerationConfig

METADATA = "lima_recipes.json"


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


def write_model_files(out_dir: str | Path, config, dtype: torch.dtype, tokenizer, eot_token: str, generation_cfg,
                      metadata: dict | None = None) -> None:
    """Everything but the weights (rank 0): config.json naming the dtype the weights were written
    in and with the KV cache on for generation, the tokenizer, LIMA's generation config."""
    out_dir = Path(out_dir)
    config = copy.deepcopy(config)
    config.use_cache = True
    config.dtype = dtype
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    generation_config(generation_cfg, tokenizer, eot_token).save_pretrained(out_dir)
    if metadata:
        (out_dir / METADATA).write_text(json.dumps(metadata, indent=2, default=str))


def export_model(model, tokenizer, eot_token: str, generation_cfg, out_dir: str | Path, metadata: dict | None = None,
                 dtype: torch.dtype | None = None) -> Path:
    """A model held whole in this process, written as a complete HF directory."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = dtype or model.dtype
    model.save_pretrained(out_dir, state_dict={k: v.detach().to(dtype) for k, v in model.state_dict().items()})
    write_model_files(out_dir, model.config, dtype, tokenizer, eot_token, generation_cfg, metadata)
    return out_dir
