"""End-to-end runs of the tiny model: train -> checkpoints -> export -> reload, NaN handling,
user errors as one line, and a real 2-process DDP run on CPU."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["trainer.max_epochs=2", "trainer.checkpoint_epochs=[1,2]", "trainer.enable_progress_bar=false", "trainer.micro_batch_size=8"]


def train(compose_cfg, run_dir: Path, *overrides: str) -> dict:
    from lima_recipes.train.run import run_training

    return run_training(compose_cfg(*QUICK, *overrides), run_dir)


@pytest.mark.slow
def test_tiny_train_export_reload_gives_same_logits(compose_cfg, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    run_dir = tmp_path / "run"
    result = train(compose_cfg, run_dir)
    for name in ("config.yaml", "metrics.csv", "data_stats.json", "COMPLETED", "checkpoints/last.ckpt",
                 "checkpoints/epoch=01/model.safetensors", "checkpoints/epoch=02/config.json", "checkpoints/epoch=02/tokenizer.json"):
        assert (run_dir / name).is_file(), name
    rows = [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if r.get("train/loss")]
    losses = [float(r["train/loss"]) for r in rows]
    assert len(losses) == result["steps"] == 10  # 40 examples / 8 per step x 2 epochs
    assert losses[-1] < losses[0]
    assert all(0.0 <= float(r["train/pad_fraction"]) < 0.5 for r in rows)
    assert "val/loss" in result

    export = run_dir / "export"
    tokenizer = AutoTokenizer.from_pretrained(export)
    model = AutoModelForCausalLM.from_pretrained(export).eval()
    gen = GenerationConfig.from_pretrained(export)
    eot = tokenizer.convert_tokens_to_ids("<|eot|>")
    assert (gen.top_p, gen.temperature, gen.repetition_penalty, gen.eos_token_id) == (0.9, 0.7, 1.2, eot)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hello?"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<s>Hello?<|eot|>"

    # the final weights are the last step's: rebuild from last.ckpt with plain torch, compare logits
    from lima_recipes.model.build import build_model

    cfg = compose_cfg()
    reference = build_model(cfg.model, tokenizer, seed=0)
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    reference.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    ids = tokenizer(prompt + "Hi there.", return_tensors="pt", add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(model(input_ids=ids).logits, reference.eval()(input_ids=ids).logits)

    # the offline converter reads the single-file last.ckpt into the same weights
    from safetensors.torch import load_file

    from lima_recipes.train.convert import convert_checkpoint

    converted = convert_checkpoint(run_dir / "checkpoints" / "last.ckpt", tmp_path / "converted", torch.float32)
    exported = load_file(export / "model.safetensors")
    assert load_file(converted / "model.safetensors").keys() == exported.keys()
    assert all(torch.equal(load_file(converted / "model.safetensors")[k], v) for k, v in exported.items())
    assert AutoTokenizer.from_pretrained(converted).convert_tokens_to_ids("<|eot|>") == eot

    again = train(compose_cfg, run_dir)  # a completed run is not trained twice
    assert again["run_id"] == result["run_id"] and again["steps"] == result["steps"]


@pytest.mark.slow
def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(compose_cfg, tmp_path, monkeypatch):
    import lima_recipes.model.module as module

    from lima_recipes.errors import TrainingDivergedError

    real = module.token_loss_sum
    calls = {"n": 0}

    def poisoned(logits, labels):
        calls["n"] += torch.is_grad_enabled()  # count training micro-batches only, not validation
        loss, count = real(logits, labels)
        return (loss * float("nan"), count) if calls["n"] >= 8 else (loss, count)

    monkeypatch.setattr(module, "token_loss_sum", poisoned)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match=r"train/loss is nan at optimizer step 8 \(epoch 2\).*last good checkpoint: .*last.ckpt"):
        train(compose_cfg, run_dir)
    assert (run_dir / "checkpoints" / "epoch=01" / "model.safetensors").is_file()
    assert not (run_dir / "checkpoints" / "epoch=02").exists()
    assert not (run_dir / "COMPLETED").exists() and not (run_dir / "export").exists()
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())


def run_cli(*args: str, tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    common = [f"run.output_root={tmp_path}/outputs", f"data.cache_dir={tmp_path}/cache"]
    return subprocess.run([sys.executable, "recipes/train.py", *common, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args,expected", [
    (["trainer.max_epoch=3"], "error: unknown config key 'trainer.max_epoch' (did you mean 'trainer.max_epochs'?)"),
    (["model=llama65b", "data=lima1k"], "error: make plan: llama65b with strategy=auto on 1 device(s) needs about"),
    (["experiment=lima65b", "trainer.num_nodes=1"], "error: make plan: llama65b with strategy=fsdp on 8 device(s)"),
    (["model=llama65b", "data=lima1k", "trainer.check_memory=false"], "error: data.hub_id=GAIR/lima"),
    (["model=llama65b", "data=lima1k", "trainer.check_memory=false", "data.path=lima_recipes/assets/sample/train.jsonl"],
     "error: model.path=huggyllama/llama-65b"),
    (["data=jsonl", "data.path=/no/such.jsonl"], "error: data.path=/no/such.jsonl: no such file"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, expected):
    proc = run_cli(*args, tmp_path=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(expected), proc.stderr
    assert "Traceback" not in proc.stderr
    assert any(fix in lines[0] for fix in ("pass", "did you mean", "smallest fix: run it on GPUs"))


@pytest.mark.slow
def test_two_process_ddp_on_cpu_trains(tmp_path):
    proc = run_cli("strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_epochs=1",
                   "trainer.checkpoint_epochs=[1]", "logger=csv", "trainer.enable_progress_bar=false", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [p.parent for p in (tmp_path / "outputs").rglob("COMPLETED")]
    assert len(runs) == 1
    result = json.loads((runs[0] / "COMPLETED").read_text())
    assert result["steps"] == 5 and (runs[0] / "export" / "model.safetensors").is_file()


@pytest.mark.parametrize("args,expected", [
    (["ckpt=/no/such/last.ckpt"], "error: ckpt=/no/such/last.ckpt: no such file or directory"),
    ([], "error: ckpt is required: make convert ckpt="),
    (["ckpt=README.md", "dtype=int8"], "error: dtype='int8' is not one of float32, bfloat16, float16"),
])
def test_convert_errors_are_one_line(args, expected):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "recipes/convert.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(expected), proc.stderr


def test_make_forwards_assignments_as_hydra_overrides():
    proc = subprocess.run(["make", "-n", "train", "model=llama7b", "trainer.max_epochs=3"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0
    assert "recipes/train.py 'model=llama7b' 'trainer.max_epochs=3'" in proc.stdout


@pytest.mark.slow
def test_make_train_eval_dev_select_promotes_a_kept_epoch(tmp_path):
    import json

    proc = run_cli(*QUICK, "logger=csv", "eval=dev_select", "judge=none", "eval.epochs=[1,2]", "prompts.max_prompts=2",
                   "generation.max_new_tokens=8", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p.parent for p in (tmp_path / "outputs").rglob("COMPLETED")]
    record = json.loads((run_dir / "eval" / "dev_select.json").read_text())
    assert record["winner"] in (1, 2) and record["epochs"] == [1, 2]
    assert json.loads((run_dir / "export" / "lima_recipes.json").read_text())["epoch"] == record["winner"]
    assert f"epoch {record['winner']} promoted to export/" in proc.stdout
