"""strategy.compile: regional torch.compile of each layer's attention and MLP block. The eager run
is the reference: with LIMA's residual dropout on, a compiled run must draw the same masks and
reach the same loss and weights."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from lima_recipes.errors import ConfigError
from lima_recipes.model.compile import compile_blocks


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = nn.Linear(2, 2)  # not named self_attn: a layout compile_blocks does not know


class Unknown(nn.Module):
    _no_split_modules = ["Block"]

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Block(), Block()])


def test_a_layer_without_attention_and_mlp_blocks_is_one_error_naming_its_class():
    with pytest.raises(ConfigError, match=r"strategy.compile: Block has no self_attn / mlp blocks.*strategy.compile=false"):
        compile_blocks(Unknown())


def test_deepspeed_refuses_compile_in_validation(compose_cfg):
    from lima_recipes.config import validate

    with pytest.raises(ConfigError, match="strategy.compile=true is not supported with strategy=deepspeed_zero2"):
        validate(compose_cfg("strategy=deepspeed_zero2", "trainer.accelerator=gpu", "strategy.compile=true"))


def test_compile_marks_every_block_and_keeps_parameter_names(compose_cfg, tiny_tokenizer):
    from lima_recipes.train.run import make_model

    eager = make_model(compose_cfg(), tiny_tokenizer)
    compiled = make_model(compose_cfg("strategy.compile=true"), tiny_tokenizer)
    blocks = [m for m in compiled.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    layers = compiled.config.num_hidden_layers
    assert len(blocks) == 2 * layers and {type(b).__name__ for b in blocks} == {"LlamaAttention", "LlamaMLP"}
    assert not any(getattr(m, "_compiled_call_impl", None) is not None for m in eager.modules())
    assert list(compiled.state_dict()) == list(eager.state_dict())


def _weights(export) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {name: t for f in sorted(export.glob("*.safetensors")) for name, t in load_file(f).items()}


def _losses(run_dir) -> list[float]:
    rows = list(csv.DictReader(next(run_dir.rglob("metrics.csv")).open()))
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


@pytest.mark.slow
def test_a_compiled_run_trains_like_the_eager_one_dropout_included(tmp_path, compose_cfg):
    """Three optimizer steps of the tiny model with LIMA's dropout at 0.3: the compiled blocks
    leave the dropout hooks eager, so the masks, the losses and the exported weights are the
    eager run's (up to the reordered float sums of fused kernels)."""
    from lima_recipes.train.run import run_training

    run = ["trainer.max_steps=3", "model.residual_dropout=0.3", "optim.lr=1e-3", "trainer.enable_progress_bar=false",
           "trainer.checkpoint_epochs=[]"]
    run_training(compose_cfg(*run), tmp_path / "eager")
    run_training(compose_cfg(*run, "strategy.compile=true"), tmp_path / "compiled")
    eager, compiled = _losses(tmp_path / "eager"), _losses(tmp_path / "compiled")
    assert len(eager) == 3
    assert compiled == pytest.approx(eager, rel=1e-5)
    ours, reference = _weights(tmp_path / "compiled" / "export"), _weights(tmp_path / "eager" / "export")
    assert ours and ours.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_compiled_blocks_under_fsdp2_on_two_processes_equal_one_eager_process(tmp_path, compose_cfg):
    """Compilation before sharding (as torchtitan orders it): two gloo ranks with compiled blocks
    take the same two steps as one eager process accumulating their micro-batches."""
    from lima_recipes.train.run import run_training

    from test_sharded import FSDP, run_distributed

    step = ["trainer.max_steps=2", "optim.lr=1e-3", "model.residual_dropout=0.0", "trainer.micro_batch_size=4",
            "trainer.checkpoint_epochs=[]", "trainer.enable_progress_bar=false"]
    run_training(compose_cfg(*step), tmp_path / "single")
    inductor = tmp_path / "inductor"  # where the ranks' compiled kernels land: proof they compiled
    proc = run_distributed("train", tmp_path / "fsdp", *FSDP, *step, "strategy.compile=true", env={"TORCHINDUCTOR_CACHE_DIR": str(inductor)})
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert any(inductor.rglob("*.py")), "no rank compiled anything"
    ours, reference = _weights(tmp_path / "fsdp" / "run" / "export"), _weights(tmp_path / "single" / "export")
    assert ours and ours.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-4, atol=1e-5, msg=name)
