"""Section 9: the sharded path on 2 CPU processes (gloo). Seconds per optimizer step of FSDP2
against DDP on the same model and batch, and each loader's peak memory per rank while a ~100M
bf16 checkpoint loads into fp32 master weights: FSDP2 broadcast, FSDP2 per-rank reads, and the
whole model on every rank (DDP). "Own" memory is anonymous memory (RssAnon), sampled: the mapped
checkpoint's page cache is shared by the ranks of a node and reclaimable, so RSS overstates it.

Each figure comes from torchrun-started processes of `make train`'s own code; the two strategies
alternate, round after round, so a drift of the machine's speed falls on both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lima_recipes.bench.measure import spread

CHILD = "lima_recipes.bench.sharded_child"
STEP_MODEL = ["model.hidden_size=256", "model.intermediate_size=704", "model.num_hidden_layers=4", "model.num_attention_heads=4",
              "model.num_key_value_heads=4", "model.residual_dropout=0.0", "strategy.precision=32-true",
              "trainer.micro_batch_size=4", "trainer.global_batch_size=8", "trainer.save_last=false", "trainer.checkpoint_epochs=[]"]
"""A small Llama on the sample data: 2 ranks x 4 examples a step, one micro-batch per rank."""
STRATEGIES = {"FSDP2": ["strategy=fsdp", "strategy.activation_checkpointing=false"], "DDP": ["strategy=ddp"]}


def torchrun(spec: dict, timeout: float = 600) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", CHILD,
                           json.dumps(spec)], capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{CHILD} {spec['case']} failed (exit {proc.returncode}):\n{tail}")


def step_times(workdir: Path, rounds: int, epochs: int, warmup_steps: int) -> dict:
    """Both strategies see the same batches in the same order (same seed), whose lengths vary from
    step to step: each step's FSDP2 time is divided by the same step's DDP time of the round."""
    per_strategy: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    ratios = []
    for r in range(rounds):
        seconds = {}
        for name, overrides in STRATEGIES.items():
            out = workdir / f"steps-{name}-{r}"
            torchrun({"case": "steps", "name": name, "out": str(out), "overrides": [*STEP_MODEL, *overrides,
                                                                                    f"trainer.max_epochs={epochs}"]})
            seconds[name] = json.loads((out / f"steps-{name}.json").read_text())["seconds"][warmup_steps:]
            per_strategy[name] += seconds[name]
        ratios += [f / d for f, d in zip(seconds["FSDP2"], seconds["DDP"])]
    ratio = spread(ratios)
    return {"seconds_per_step": {name: spread(s) for name, s in per_strategy.items()}, "ratio_fsdp2_to_ddp": ratio,
            "target": {"name": "FSDP2 / DDP seconds per step <= 1.3", "value": ratio["median"], "met": ratio["median"] <= 1.3}}


def write_pretrained(path: Path, hidden: int, layers: int) -> Path:
    """A random Llama of about 100M parameters saved as the LLaMA checkpoints are (bf16 safetensors):
    trained in fp32 master weights, so loading it on every rank makes a full fp32 copy per rank."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lima_recipes.config import compose
    from lima_recipes.model.build import load_tokenizer

    tokenizer = load_tokenizer(compose([]).model)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 11 // 4, num_hidden_layers=layers,
                         num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=2048, tie_word_embeddings=False)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def loader_memory(workdir: Path, hidden: int, layers: int) -> dict:
    path = write_pretrained(workdir / "pretrained", hidden, layers)
    overrides = ["model=hf", f"model.path={path}", f"model.tokenizer_path={path}", "model.dtype=bfloat16"]
    out = {}
    for loader in ("broadcast", "per_rank", "every_rank"):
        torchrun({"case": "load", "loader": loader, "out": str(workdir), "overrides": overrides})
        ranks = [json.loads((workdir / f"load-{loader}-{rank}.json").read_text()) for rank in (0, 1)]
        full_mb = ranks[0]["numel"] * 4 / 2**20
        out[loader] = {"model_mb": full_mb, "ranks": [
            {"own_memory_growth_mb": r["anon_peak_mb"] - r["anon_before_mb"], "rss_growth_mb": r["peak_rss_mb"] - r["rss_before_mb"]}
            for r in ranks]}
    return out


def sharded_section(workdir: Path, rounds: int = 1, epochs: int = 2, warmup_steps: int = 3, hidden: int = 1024,
                    layers: int = 8) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    return {"steps": step_times(workdir, rounds, epochs, warmup_steps), "loaders": loader_memory(workdir, hidden, layers)}
