"""Where generation and the local judge put a model: device, dtype and multi-GPU placement, decided
from what the machine offers (mocked here; the gpu-marked test runs it for real)."""

from __future__ import annotations

import pytest
import torch

from lima_recipes.errors import ConfigError
from lima_recipes.eval.placement import Accelerators, Placement, choose_placement, load_causal_lm, weight_count

H100 = Accelerators(count=8, memory_bytes=80 * 1024**3, bf16=True)
V100 = Accelerators(count=1, memory_bytes=32 * 1024**3, bf16=False)


def test_cpu_machines_stay_in_float32_on_the_cpu():
    assert choose_placement(7_000_000_000, accelerators=Accelerators()) == Placement("cpu", torch.float32)
    assert choose_placement(10, dtype="bfloat16", accelerators=Accelerators()) == Placement("cpu", torch.bfloat16)
    assert choose_placement(10, device="cpu", accelerators=H100) == Placement("cpu", torch.float32)


def test_gpus_get_bf16_where_supported_and_are_spread_only_when_one_is_too_small():
    assert choose_placement(7_000_000_000, accelerators=H100) == Placement("cuda", torch.bfloat16)
    assert choose_placement(7_000_000_000, accelerators=V100) == Placement("cuda", torch.float16)
    # 65B in bf16 is 130 GB: more than one 80 GB GPU holds, so accelerate spreads the layers
    assert choose_placement(65_000_000_000, accelerators=H100) == Placement("cuda", torch.bfloat16, "auto")
    assert choose_placement(30_000_000_000, accelerators=H100) == Placement("cuda", torch.bfloat16)
    assert choose_placement(30_000_000_000, dtype="float32", accelerators=H100) == Placement("cuda", torch.float32, "auto")
    single = Accelerators(count=1, memory_bytes=80 * 1024**3, bf16=True)
    assert choose_placement(65_000_000_000, accelerators=single).device_map is None  # nothing to spread over


def test_bad_settings_are_one_line():
    with pytest.raises(ConfigError, match="generation.device=cuda: no CUDA GPU is visible"):
        choose_placement(10, device="cuda", accelerators=Accelerators())
    with pytest.raises(ConfigError, match="generation.device='tpu' is not one of auto, cuda, cpu"):
        choose_placement(10, device="tpu")
    with pytest.raises(ConfigError, match="generation.dtype='int8' is not one of auto, float32"):
        choose_placement(10, dtype="int8")


def test_weights_are_counted_from_safetensors_headers_and_loaded_where_chosen(tmp_path, monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    from lima_recipes.eval import placement

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                         num_attention_heads=4, tie_word_embeddings=False))
    model.save_pretrained(tmp_path)
    assert weight_count(tmp_path) == sum(p.numel() for p in model.parameters())
    seen = []
    monkeypatch.setattr(placement, "choose_placement", lambda count, device, dtype: seen.append(count) or Placement("cpu", torch.bfloat16))
    loaded = load_causal_lm(tmp_path)
    assert seen == [weight_count(tmp_path)] and not loaded.training
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}


@pytest.mark.gpu
def test_generation_runs_on_the_gpu_in_bf16(compose_cfg, tmp_path):
    """Real generation on CUDA through make generate's path (not yet run: no GPU in CI)."""
    from lima_recipes.eval.generate import generate_to_file
    from lima_recipes.train.run import run_training

    cfg = compose_cfg("trainer.max_epochs=1", "trainer.checkpoint_epochs=[]", "trainer.enable_progress_bar=false",
                      "trainer.micro_batch_size=8", "trainer.accelerator=cpu", "generation.max_new_tokens=32")
    run_training(cfg, tmp_path / "run")
    from lima_recipes.eval.generate import load_for_generation

    model, _, _ = load_for_generation(tmp_path / "run" / "export", cfg.generation)
    assert next(model.parameters()).device.type == "cuda"
    assert next(model.parameters()).dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    path, metrics = generate_to_file(tmp_path / "run", cfg.prompts, cfg.generation, 1, 4, 1)
    assert metrics["responses"] == len(path.read_text().splitlines()) > 0
