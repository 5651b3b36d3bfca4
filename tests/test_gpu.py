"""What only a CUDA GPU can check (skipped elsewhere, see conftest): FSDP2's bf16 mixed precision on
NCCL, and Lightning's DeepSpeedStrategy (which refuses CPUs) loading, training and exporting ZeRO-3.
The same code paths run on CPU in tests/test_sharded.py; these have not run on a GPU yet."""

from __future__ import annotations

import json

import pytest
import torch

from test_sharded import hf_weights, reference_model, save_pretrained_tiny
from test_train_e2e import ROOT, run_cli

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
QUICK = ["trainer.max_epochs=1", "trainer.checkpoint_epochs=[1]", "trainer.enable_progress_bar=false", "logger=csv",
         "trainer.devices=1", "trainer.accelerator=gpu"]


def finished(tmp_path) -> dict:
    (marker,) = (tmp_path / "outputs").rglob("COMPLETED")
    return json.loads(marker.read_text())


def test_fsdp2_bf16_mixed_trains_and_exports_on_a_gpu(tmp_path):
    proc = run_cli(*QUICK, "strategy=fsdp", "trainer.save_dtype=bfloat16", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = finished(tmp_path)
    assert result["steps"] == 5 and 0 < result["train/loss"] < 10
    export = hf_weights(result["export"])
    assert all(t.dtype == torch.bfloat16 and torch.isfinite(t.float()).all() for t in export.values())


def test_zero3_under_lightning_loads_the_grown_vocabulary_trains_and_exports(tmp_path, compose_cfg, tiny_tokenizer):
    path = save_pretrained_tiny(tmp_path / "pretrained", compose_cfg, tiny_tokenizer)
    proc = run_cli(*QUICK, "strategy=deepspeed_zero3", f"model.path={path}", "model.dtype=float32", "trainer.max_steps=1",
                   "optim.lr=1e-12", "optim.final_lr=1e-12", "model.residual_dropout=0.0", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = finished(tmp_path)
    exported = hf_weights(result["export"])
    # one step at lr 1e-12 leaves the loaded weights (bf16-rounded by DeepSpeed's bf16 module)
    reference = reference_model(path, torch.float32, len(tiny_tokenizer) + 1).state_dict()
    for name, tensor in reference.items():
        torch.testing.assert_close(exported[name].float(), tensor, rtol=1e-2, atol=1e-2, msg=name)


def test_bench_gpu_section_runs_the_fsdp2_path(tmp_path):
    """Section 8 of make bench at toy size on this device (FSDP2 and ZeRO-3, checkpointing on and off)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "recipes/bench.py", "--quick", "--only", "gpu", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
