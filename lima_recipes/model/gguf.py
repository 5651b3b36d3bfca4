"""Pretrained weights shipped as a GGUF file (the llama.cpp world), fine-tuned like any checkpoint.

transformers reads a GGUF by dequantizing every tensor to a dense float (`gguf_file=`), which
takes seconds to minutes and leaves a quantizer attached that refuses `save_pretrained` and HF's
Trainer. We dequantize once, detach the quantizer (the weights are already dense fp32), and keep
the result as an ordinary safetensors directory in a cache keyed by the file's content: every
later run, rank, plan and export reads that directory in well under a second, and a changed file
can never be served from a stale copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from lima_recipes.errors import WeightsNotFoundError
from lima_recipes.io import ordinary_mode

SOURCE_FILE = "gguf_source.json"
"""Written into each dequantized directory: which file it came from, its sha256 and architecture."""


def gguf_architecture(path: Path, key: str = "model.gguf_file") -> str:
    """The `general.architecture` of a GGUF file, checked to be one transformers can load as a
    decoder-only causal LM; one line naming the file otherwise (truncated, not a GGUF, unsupported)."""
    import gguf
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    try:
        reader = gguf.GGUFReader(str(path))
        field = reader.get_field("general.architecture")
        architecture = bytes(field.parts[field.data[0]]).decode() if field is not None else None
    except (ValueError, IndexError, KeyError, OSError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise WeightsNotFoundError(f"{key}={path}: not a complete GGUF file ({reason}); download it again") from None
    if architecture is None:
        raise WeightsNotFoundError(f"{key}={path}: the GGUF header names no general.architecture")
    if architecture not in GGUF_SUPPORTED_ARCHITECTURES or architecture in NOT_CAUSAL_DECODERS:
        supported = sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - NOT_CAUSAL_DECODERS - {"general", "tokenizer"})
        raise WeightsNotFoundError(
            f"{key}={path}: GGUF architecture {architecture!r} cannot be fine-tuned here "
            f"(transformers reads these as decoder-only LMs: {', '.join(supported)}); convert it to safetensors and pass model.path"
        )
    return architecture


NOT_CAUSAL_DECODERS = {"t5", "umt5", "mamba"}
"""GGUF architectures transformers reads that are not decoder-only transformers (no residual
attention/MLP layers for our dropout and sharding)."""


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The file's content hash (memoised per process while size and mtime are unchanged)."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def dequantized_checkpoint(path: Path, cache_root: Path, key: str = "model.gguf_file") -> Path:
    """The safetensors directory (model, tokenizer, chat template) of a GGUF file, dequantized on
    the first call and read from the cache after. Concurrent callers (the ranks of one run) wait
    for the one that converts; an interrupted conversion leaves no directory behind."""
    from filelock import FileLock

    if not path.is_file():
        raise WeightsNotFoundError(f"{key}={path}: no such file")
    digest = file_sha256(path)
    target = cache_root / digest[:20]
    if (target / SOURCE_FILE).is_file():
        return target
    architecture = gguf_architecture(path, key)
    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / SOURCE_FILE).is_file():
            _convert(path, target, {"gguf": str(path.resolve()), "sha256": digest, "architecture": architecture})
    return target


def _convert(path: Path, target: Path, source: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
        # The quantizer only records where the weights came from; they are dense fp32 already.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        (staging / SOURCE_FILE).write_text(json.dumps(source, indent=2))
        for item in [staging, *staging.iterdir()]:
            os.chmod(item, ordinary_mode(item.is_dir()))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
