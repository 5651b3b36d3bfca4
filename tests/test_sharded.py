"""FSDP2 for real: 2 gloo processes on CPU load, step, checkpoint, resume and export, each checked
against a single-process reference (plain transformers, or the same run on one process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SEED = 1234  # run.seed's default: the grown rows are drawn under it


def run_distributed(case: str, out: Path, *overrides: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "tests/dist_worker.py", case,
         str(out), *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", **(env or {})})
    return proc


def save_pretrained_tiny(path: Path, compose_cfg, tokenizer, dtype=torch.float32, **arch) -> Path:
    """A 'pretrained' Llama as the hub stores it: no template tokens yet, random weights."""
    from transformers import LlamaForCausalLM

    from lima_recipes.model.build import architecture_config

    torch.manual_seed(7)
    config = architecture_config(compose_cfg().model, vocab_size=len(tokenizer))
    for key, value in arch.items():
        setattr(config, key, value)
    model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def reference_model(path: Path, dtype: torch.dtype, num_tokens: int):
    """The independent reference: plain from_pretrained + resize_token_embeddings(mean_resizing=True)
    under the run seed, then fp32 master weights."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(path, dtype=dtype)
    torch.manual_seed(SEED)
    model.resize_token_embeddings(num_tokens, mean_resizing=True)
    return model.float()


@pytest.mark.slow
@pytest.mark.parametrize("load,dtype", [("broadcast", "float32"), ("per_rank", "float32"), ("broadcast", "bfloat16"),
                                        ("per_rank", "bfloat16")])
def test_sharded_load_equals_the_file_with_grown_vocabulary_and_real_buffers(tmp_path, compose_cfg, tiny_tokenizer, load, dtype):
    torch_dtype = getattr(torch, dtype)
    path = save_pretrained_tiny(tmp_path / "pretrained", compose_cfg, tiny_tokenizer, torch_dtype)
    out = tmp_path / "load"
    proc = run_distributed("load", out, f"model.path={path}", f"model.dtype={dtype}", f"strategy.load={load}")
    assert proc.returncode == 0, proc.stderr[-6000:]
    loaded = torch.load(out / "loaded.pt", weights_only=False)
    assert loaded["param_types"] == ["DTensor"] and loaded["dtypes"] == ["torch.float32"]  # fp32 shards of a bf16 file

    reference = reference_model(path, torch_dtype, len(tiny_tokenizer) + 1)  # + the end-of-turn token
    expected = reference.state_dict()
    assert loaded["state"].keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(loaded["state"][name], tensor), name
    assert loaded["state"]["model.embed_tokens.weight"].shape[0] == len(tiny_tokenizer) + 1

    head_dim = reference.config.hidden_size // reference.config.num_attention_heads
    formula = 1.0 / (reference.config.rope_parameters["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    assert torch.equal(loaded["buffers"]["model.rotary_emb.inv_freq"], formula)
    for name, buffer in reference.named_buffers():
        assert torch.equal(loaded["buffers"][name], buffer), name


@pytest.mark.slow
@pytest.mark.parametrize("load", ["broadcast", "per_rank"])
def test_any_family_through_model_hf_a_tied_qwen2_with_biases(tmp_path, tiny_tokenizer, load):
    """model=hf reads the architecture from the checkpoint; the Auto classes build it; a tied
    embedding (stored once) grows once and serves as the output layer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model("qwen2", vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=96,
                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                                  tie_word_embeddings=True, pad_token_id=None, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(3)
    path = tmp_path / "qwen2"
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    out = tmp_path / "load"
    proc = run_distributed("load", out, "model=hf", f"model.path={path}", "model.dtype=float32", f"strategy.load={load}")
    assert proc.returncode == 0, proc.stderr[-6000:]
    loaded = torch.load(out / "loaded.pt", weights_only=False)["state"]
    reference = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    torch.manual_seed(SEED)
    reference.resize_token_embeddings(len(tiny_tokenizer) + 1, mean_resizing=True)
    expected = reference.state_dict()
    assert "model.layers.0.self_attn.q_proj.bias" in expected and loaded.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(loaded[name], tensor), name


@pytest.mark.slow
def test_from_scratch_shards_start_from_the_single_process_init(tmp_path, compose_cfg, tiny_tokenizer):
    from lima_recipes.data.templates import build_template
    from lima_recipes.train.run import make_model

    out = tmp_path / "load"
    proc = run_distributed("load", out)
    assert proc.returncode == 0, proc.stderr[-6000:]
    loaded = torch.load(out / "loaded.pt", weights_only=False)
    cfg = compose_cfg()
    build_template(cfg.template).install(tiny_tokenizer)
    expected = make_model(cfg, tiny_tokenizer).state_dict()
    for name, tensor in expected.items():
        assert torch.equal(loaded["state"][name], tensor), name


@pytest.mark.slow
@pytest.mark.parametrize("load", ["broadcast", "per_rank"])
def test_rank_1_never_holds_a_full_copy_while_loading(tmp_path, compose_cfg, tiny_tokenizer, load):
    """About 100M parameters (400 MB in fp32): rank 1 grows by its half and a little more, where
    from_pretrained on every rank would hold the whole model (and its fp32 upcast)."""
    path = save_pretrained_tiny(tmp_path / "pretrained", compose_cfg, tiny_tokenizer, hidden_size=1024, intermediate_size=2816,
                                num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=16)
    out = tmp_path / "load"
    proc = run_distributed("load", out, "model=hf", f"model.path={path}", f"model.tokenizer_path={path}", "model.dtype=float32",
                           f"strategy.load={load}")
    assert proc.returncode == 0, proc.stderr[-6000:]
    rank1 = json.loads((out / "memory-1.json").read_text())
    full_mb = rank1["numel"] * 4 / 2**20
    grew_mb = rank1["anon_peak_mb"] - rank1["anon_before_mb"]
    assert rank1["local_numel"] * 2 == pytest.approx(rank1["numel"], rel=0.01)
    print(f"{load}: rank 1 grew by {grew_mb:.0f} MB of its own memory (peak RSS with mapped file pages: "
          f"{rank1['peak_rss_mb'] - rank1['rss_before_mb']:.0f} MB) while loading a {full_mb:.0f} MB model")
    assert grew_mb < 0.75 * full_mb, f"rank 1 grew by {grew_mb:.0f} MB for a {full_mb:.0f} MB model"


FSDP = ["strategy=fsdp", "strategy.precision=32-true"]  # fp32 compute on CPU: compared at 1e-6


def lightning_file_weights(path: Path) -> dict[str, torch.Tensor]:
    """A single-process run's last.ckpt, read with plain torch (the reference side)."""
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {key.removeprefix("model."): value for key, value in state.items()}


def hf_weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype="auto").state_dict()


@pytest.mark.slow
def test_steps_with_clipping_equal_one_process_and_the_bf16_export_reloads(tmp_path, compose_cfg):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima_recipes.train.convert import convert_checkpoint
    from lima_recipes.train.run import run_training

    # 8 examples a step: one process accumulates 2 x 4, two ranks take 4 each. AdamW's step does
    # not depend on the gradient's scale, which would hide the clip; eps=1 makes it (nearly) the
    # gradient itself, so the clip to 0.05, far below the gradient's norm, shows in every weight.
    step = ["trainer.max_steps=2", "optim.lr=1.0", "optim.final_lr=0.1", "optim.eps=1.0", "optim.gradient_clip_val=0.05",
            "model.residual_dropout=0.0", "trainer.micro_batch_size=4", "trainer.save_dtype=bfloat16",
            "trainer.checkpoint_epochs=[1]", "trainer.checkpoint_every_n_steps=1", "trainer.enable_progress_bar=false"]
    run_training(compose_cfg(*step), tmp_path / "single")
    proc = run_distributed("train", tmp_path / "fsdp", *FSDP, *step)
    assert proc.returncode == 0, proc.stderr[-6000:]
    sharded_ckpt = tmp_path / "fsdp" / "run" / "checkpoints" / "last.ckpt"
    assert sorted(p.name for p in sharded_ckpt.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]

    reference = lightning_file_weights(tmp_path / "single" / "checkpoints" / "last.ckpt")
    stepped = hf_weights(convert_checkpoint(sharded_ckpt, tmp_path / "fp32", torch.float32))
    assert stepped.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(stepped[name], tensor, rtol=0, atol=1e-6, msg=name)

    # The export was written from the shards in bf16: the offline converter gives the same tensors,
    # and plain from_pretrained gives the reference's logits within bf16 rounding.
    export = tmp_path / "fsdp" / "run" / "export"
    exported = hf_weights(export)
    converted = hf_weights(convert_checkpoint(sharded_ckpt, tmp_path / "bf16", torch.bfloat16))
    assert all(t.dtype == torch.bfloat16 for t in exported.values())
    assert all(torch.equal(exported[name], converted[name]) for name in exported)
    tokenizer = AutoTokenizer.from_pretrained(export)
    ids = tokenizer("How do I boil an egg? Gently.", return_tensors="pt")["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(export).eval()
    ref = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32).eval()
    ref.load_state_dict(reference)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits.float(), ref(input_ids=ids).logits, rtol=0.05, atol=0.05)


@pytest.mark.slow
def test_resume_from_a_sharded_checkpoint_in_fresh_processes_equals_an_uninterrupted_run(tmp_path):
    run = [*FSDP, "trainer.max_epochs=2", "trainer.checkpoint_epochs=[1,2]", "trainer.checkpoint_every_n_steps=1"]
    assert run_distributed("train", tmp_path / "a", *run).returncode == 0
    stopped = run_distributed("train", tmp_path / "b", *run, env={"STOP_AFTER_STEP": "3"})
    assert stopped.returncode != 0 and "stopped after step 3" in stopped.stderr
    last = tmp_path / "b" / "run" / "checkpoints" / "last.ckpt"
    assert (last / "__1_0.distcp").is_file() and torch.load(last / "meta.pt", weights_only=False)["global_step"] == 3
    resumed = run_distributed("train", tmp_path / "b", *run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "b" / "result.json").read_text())["steps"] == 10
    ours, theirs = hf_weights(tmp_path / "b" / "run" / "export"), hf_weights(tmp_path / "a" / "run" / "export")
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.slow
def test_zero3_loader_fills_the_partitions_and_its_checkpoint_converts_to_bf16(tmp_path, compose_cfg, tiny_tokenizer):
    """Raw DeepSpeed on 2 gloo processes (Lightning's DeepSpeedStrategy refuses CPUs): the model is
    built inside zero.Init with the grown vocabulary and filled from rank 0's files, trains a step,
    and DeepSpeed's checkpoint converts lazily to an HF directory that plain from_pretrained reads."""
    path = save_pretrained_tiny(tmp_path / "pretrained", compose_cfg, tiny_tokenizer)
    out = tmp_path / "zero3"
    proc = run_distributed("zero3", out, f"model.path={path}", "model.dtype=float32", timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    got = torch.load(out / "zero3.pt", weights_only=False)
    reference = reference_model(path, torch.float32, len(tiny_tokenizer) + 1)
    assert got["local_numel"] < sum(p.numel() for p in reference.parameters()) / 1.9  # partitioned, about half each
    for name, tensor in reference.state_dict().items():
        assert torch.equal(got["loaded"][name], tensor), name
    for name, buffer in reference.named_buffers():
        assert torch.equal(got["buffers"][name], buffer), name
    converted = hf_weights(out / "hf")
    assert not all(torch.equal(got["stepped"][n], got["loaded"][n]) for n in converted)  # it did train
    for name, tensor in converted.items():
        assert tensor.dtype == torch.bfloat16 and torch.equal(tensor, got["stepped"][name].to(torch.bfloat16)), name


@pytest.mark.slow
def test_a_checkpoint_rank_0_cannot_read_stops_every_rank_with_one_line(tmp_path, compose_cfg, tiny_tokenizer):
    """Rank 0 reads for everyone: what it finds wrong reaches the other ranks, which would
    otherwise wait in a collective until the timeout."""
    from test_train_e2e import run_cli

    path = save_pretrained_tiny(tmp_path / "pretrained", compose_cfg, tiny_tokenizer)
    (path / "model.safetensors").rename(path / "pytorch_model.bin")  # as old hub checkpoints are
    proc = run_cli(*FSDP, "trainer.devices=2", "trainer.accelerator=cpu", f"model.path={path}", "logger=csv",
                   "trainer.enable_progress_bar=false", tmp_path=tmp_path, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-6000:]
    errors = {line for line in proc.stderr.splitlines() if line.startswith("error:")}
    assert errors == {f"error: {path}: sharded loading reads *.safetensors and it holds PyTorch .bin files (pytorch_model.bin...); "
                      "convert them once with `AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir)`"}
