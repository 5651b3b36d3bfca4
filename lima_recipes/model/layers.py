"""Where a decoder's layers and residual branches are, for any supported family, found from the
model itself: the layer class it names as unsplittable (FSDP's shard unit and the checkpointed
unit), and in each layer the module whose output joins the residual stream.

Pre-norm layers (Llama, Mistral, Qwen2/3, Phi-3) add the attention and MLP outputs directly.
Layers that normalise a branch's output before adding it (Gemma-2/3's sandwich norms, OLMo-2's
post-norms) add `post_attention_layernorm(...)` and `post_feedforward_layernorm(...)`; in pre-norm
layers `post_attention_layernorm` is the norm *before* the MLP, so the two layouts are told apart by
`post_feedforward_layernorm`, never by the family's name.
"""

from __future__ import annotations

from torch import nn

from lima_recipes.errors import ConfigError

PRE_NORM = ("self_attn", "mlp")
POST_NORM = ("post_attention_layernorm", "post_feedforward_layernorm")


def decoder_layer_classes(model: nn.Module) -> tuple[type, ...]:
    """The layer classes the model names in `_no_split_modules` that it actually contains."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    classes = tuple({type(m) for m in model.modules() if type(m).__name__ in names})
    if not classes:
        raise ConfigError(f"{type(model).__name__} names no decoder layer class (_no_split_modules is {sorted(names)}); "
                          "it cannot be sharded or given residual dropout layer by layer")
    return classes


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder layers, bottom to top."""
    classes = decoder_layer_classes(model)
    return [m for m in model.modules() if isinstance(m, classes)]


def residual_branches(layer: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The modules whose outputs are added to the residual stream: (attention branch, MLP branch)."""
    names = POST_NORM if hasattr(layer, POST_NORM[1]) else PRE_NORM
    if not all(isinstance(getattr(layer, name, None), nn.Module) for name in names):
        raise ConfigError(f"{type(layer).__name__}: no {' / '.join(names)} to put LIMA's residual dropout on; "
                          "this layer layout is not supported (set model.residual_dropout=0 to train without it)")
    return getattr(layer, names[0]), getattr(layer, names[1])
