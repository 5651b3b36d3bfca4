"""LIMA's residual dropout: applied to the output of each attention and MLP branch as it joins
the residual stream, rising linearly from 0.0 at the bottom layer to p at the top.

Forward hooks rather than module surgery: the state dict, and so the exported checkpoint, is
exactly the plain transformers model.
"""

from __future__ import annotations

import torch.nn.functional as F


def residual_dropout_rates(num_layers: int, top: float) -> list[float]:
    """Layer i of L gets top * i / (L - 1): 0.0 at the bottom, `top` at the top."""
    if num_layers == 1:
        return [0.0]
    return [top * i / (num_layers - 1) for i in range(num_layers)]


def _hook(p: float):
    def apply(module, _inputs, output):
        if not module.training or p == 0.0:
            return output
        if isinstance(output, tuple):
            return (F.dropout(output[0], p, training=True), *output[1:])
        return F.dropout(output, p, training=True)

    return apply


def apply_residual_dropout(model, top: float) -> list[float]:
    """Hook the output of both residual branches of every decoder layer (lima_recipes.model.layers
    finds them for each family); returns the rate of each layer."""
    from lima_recipes.model.layers import decoder_layers, residual_branches

    layers = decoder_layers(model)
    rates = residual_dropout_rates(len(layers), top)
    for layer, p in zip(layers, rates):
        layer.residual_dropout = p  # read by tests and the plan; not a parameter or buffer
        if top > 0:
            for branch in residual_branches(layer):
                branch.register_forward_hook(_hook(p))
    return rates


def disable_dropout(model) -> None:
    """Every dropout of the model off, for objectives that compare log-probabilities (DPO): the
    model's own dropout modules (LoRA's included) and attention-probability dropout, which
    transformers' attention modules read from an `attention_dropout` attribute."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
