"""Regional compilation: `torch.compile` on each decoder layer's attention and MLP blocks.

Every layer of a decoder is the same code, so one compilation serves them all. The blocks, not whole
layers: LIMA's residual dropout rate differs per layer, and inside a compiled region each distinct
rate is a new compilation; kept outside, in eager forward hooks, the dropout also draws exactly the
masks it draws without compilation, so a compiled run computes the same loss as an eager one.
"""

from __future__ import annotations

from torch import nn

from lima_recipes.errors import ConfigError
from lima_recipes.model.layers import PRE_NORM, decoder_layers


def compile_blocks(model: nn.Module) -> int:
    """Compile the attention and MLP block of every decoder layer in place (`nn.Module.compile`
    keeps parameter names, so checkpoints and exports are unchanged); returns how many."""
    blocks = []
    for layer in decoder_layers(model):
        found = [getattr(layer, name, None) for name in PRE_NORM]
        if not all(isinstance(block, nn.Module) for block in found):
            raise ConfigError(f"strategy.compile: {type(layer).__name__} has no {' / '.join(PRE_NORM)} blocks to compile; "
                              "set strategy.compile=false for this model")
        blocks.extend(found)
    for block in blocks:
        block.compile()
    return len(blocks)
