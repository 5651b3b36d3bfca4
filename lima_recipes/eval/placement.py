"""Where a model is evaluated: on the accelerator when there is one, in the dtype it runs fast and
safely in, and spread over several GPUs only when one cannot hold it.

`make generate`, dev-set selection and the local judge all load through `load_causal_lm`; a CPU run
stays in float32 on the CPU, as training left the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from lima_recipes.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
USABLE = 0.85
"""Share of a GPU's memory the weights may take when deciding whether one GPU holds the model:
the rest is the KV cache and activations of a generation batch."""


@dataclass(frozen=True)
class Accelerators:
    """What the machine offers: CUDA devices, the memory of each, and bf16 support."""

    count: int = 0
    memory_bytes: int = 0
    bf16: bool = False

    @classmethod
    def visible(cls) -> "Accelerators":
        if not torch.cuda.is_available():
            return cls()
        return cls(torch.cuda.device_count(), torch.cuda.get_device_properties(0).total_memory, torch.cuda.is_bf16_supported())


@dataclass(frozen=True)
class Placement:
    device: str
    """cpu or cuda (the first GPU; with device_map the model's first layer)."""
    dtype: torch.dtype
    device_map: str | None = None
    """"auto" when the model is spread over the visible GPUs (accelerate places the layers)."""


def choose_placement(weight_count: int, device: str = "auto", dtype: str = "auto",
                     accelerators: Accelerators | None = None) -> Placement:
    """The device, dtype and placement for a model of `weight_count` parameters."""
    if device not in ("auto", "cuda", "cpu"):
        raise ConfigError(f"generation.device={device!r} is not one of auto, cuda, cpu")
    if dtype != "auto" and dtype not in DTYPES:
        raise ConfigError(f"generation.dtype={dtype!r} is not one of auto, {', '.join(DTYPES)}")
    gpus = accelerators if accelerators is not None else Accelerators.visible()
    if device == "cuda" and gpus.count == 0:
        raise ConfigError("generation.device=cuda: no CUDA GPU is visible (use generation.device=auto or cpu)")
    on_gpu = device == "cuda" or (device == "auto" and gpus.count > 0)
    if not on_gpu:
        return Placement("cpu", DTYPES[dtype] if dtype != "auto" else torch.float32)
    chosen = DTYPES[dtype] if dtype != "auto" else (torch.bfloat16 if gpus.bf16 else torch.float16)
    needed = weight_count * torch.finfo(chosen).bits // 8
    spread = needed > USABLE * gpus.memory_bytes and gpus.count > 1
    return Placement("cuda", chosen, "auto" if spread else None)


def weight_count(model_dir: Path) -> int:
    """Parameters of a saved model, from its safetensors headers (nothing is loaded)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            total += sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())
    return total


def requested(generation_cfg) -> tuple[str, str]:
    """(device, dtype) a generation config asks for; "auto" for both without one."""
    return (generation_cfg.device, generation_cfg.dtype) if generation_cfg is not None else ("auto", "auto")


def load_causal_lm(model_dir: str | Path, device: str = "auto", dtype: str = "auto"):
    """The model of `model_dir`, in eval mode, where choose_placement puts it."""
    from transformers import AutoModelForCausalLM

    local = Path(model_dir)
    count = weight_count(local) if local.is_dir() else 0  # a hub id: one device unless told otherwise
    placement = choose_placement(count, device, dtype)
    kwargs = {"dtype": placement.dtype}
    if placement.device_map:
        kwargs["device_map"] = placement.device_map
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    if not placement.device_map:
        model = model.to(placement.device)
    return model.eval()

