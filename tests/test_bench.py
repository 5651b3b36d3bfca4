"""`make bench` code paths run and report what they claim (figures only; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_curation_bench_reports_throughput_and_memory_at_both_sizes():
    from lima_recipes.bench.curation import bench_curation

    result = bench_curation(megabytes=0.3, scale=2, repeats=1)
    assert set(result) == {"1x", "2x", "peak_memory_ratio", "input_ratio"}
    assert 1.8 < result["input_ratio"] < 2.2
    for size in ("1x", "2x"):
        assert result[size]["mb_per_s"]["median"] > 0 and result[size]["peak_rss_mb"]["median"] > 0
        assert result[size]["candidates"] > 0


def test_lima_like_mix_follows_table_1():
    import numpy as np
    from transformers import AutoTokenizer

    from lima_recipes.bench.lima_mix import TABLE1, lima_like_mix
    from lima_recipes.config.resolvers import asset_path

    tokenizer = AutoTokenizer.from_pretrained(asset_path("tiny_tokenizer"))
    records = lima_like_mix(tokenizer, scale=0.5, seed=0)
    assert len(records) == 500 and lima_like_mix(tokenizer, scale=0.5, seed=0) == records
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    for source, examples, prompt_mean, response_mean in TABLE1:
        lengths = np.array([[count(t) for t in r["conversations"]] for r in records if r["source"] == source])
        assert len(lengths) == examples // 2
        assert lengths.sum(axis=1).max() <= 2048  # cut at 2,048 tokens
        if response_mean < 1000:  # long responses are pulled down by the cut
            assert lengths[:, 1].mean() == pytest.approx(response_mean, rel=0.25), source
        assert lengths[:, 0].mean() == pytest.approx(prompt_mean, rel=0.3), source


def test_clock_leaves_out_what_runs_between_steps(monkeypatch):
    """A paired plain-loop step between two framework steps is not the framework's time."""
    import torch

    from lima_recipes.bench import train_child

    now = [0.0]
    monkeypatch.setattr(train_child.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(train_child.time, "process_time", lambda: now[0] / 2)
    clock = train_child.Clock(warmup=1, windows=2, window_steps=2)
    labels = torch.tensor([[-100, 5, 6, -100]])
    for seconds in (9.0, 1.0, 2.0, 3.0, 4.0):  # the first step is warm-up
        now[0] += seconds
        clock.micro_batch(labels, None)
        clock.step_done()
        now[0] += 100.0  # another loop's step
        clock.restart()
    result = clock.result()
    assert [w["seconds"] for w in result["windows"]] == [3.0, 7.0]
    assert [w["cpu_seconds_per_step"] for w in result["windows"]] == [0.75, 1.75]
    assert result["trained_tokens"] == 8 and result["windows"][0]["trained_tokens_per_s"] == 4 / 3.0


@pytest.mark.slow
def test_every_section_runs_at_toy_size_and_reports_positive_figures(tmp_path):
    proc = subprocess.run([sys.executable, "recipes/bench.py", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = tmp_path.glob("bench-*.json")
    report = json.loads(path.read_text())
    env = report["environment"]
    assert env["cores"] >= 1 and env["torch"] and env["transformers"] and env["lightning"] and env["git_commit"]
    step = report["step_overhead"]["variants"]
    assert set(step) == {"plain PyTorch loop", "ours (make train)", "HF Trainer"}
    for r in step.values():
        assert r["seconds_per_step"]["median"] > 0 and r["seconds_per_step"]["n"] >= 3
    for name in ("ours (make train)", "HF Trainer"):  # each timed in alternation with the plain loop
        assert step[name]["peak_rss_mb"] > 0 and step[name]["ratio_to_plain"]["n"] == step[name]["seconds_per_step"]["n"]
        assert step[name]["ratio_to_plain"]["median"] > 0 and step[name]["wall_ratio_to_plain"]["median"] > 0
    # the plain loop ran one step beside every step of each framework
    assert step["plain PyTorch loop"]["timed_steps"] == step["ours (make train)"]["timed_steps"] + step["HF Trainer"]["timed_steps"]
    mix = report["lima_mix"]
    assert len(mix["variants"]) == 5 and {t["name"] for t in mix["targets"]} >= {"our padding over the whole mix <= 5%"}
    for r in mix["variants"].values():
        assert r["trained_tokens_per_s"]["median"] > 0 and r["trained_tokens"] > 0 and 0 <= r["pad_fraction"] < 1
        assert r["seconds_per_epoch"]["n"] >= 3 and r["seconds_per_epoch"]["min"] > 0 and 0 <= r["full_mix_pad_fraction"] < 1
    # every variant trained the same examples for the same epochs: the same trained tokens
    assert len({r["trained_tokens"] for r in mix["variants"].values()}) == 1
    assert 0 < mix["mix"]["hf_batch_rebalance_full_mix_pad_fraction"] < 1
    assert mix["variants"]["TRL SFTTrainer (padding_free)"]["pad_fraction"] == 0
    assert report["data_prep"]["cold_examples_per_s"]["median"] > 0 and report["data_prep"]["cached_speedup"]["median"] > 0
    assert set(report["startup"]["phases"]) == {"imports", "compose and validate", "data", "model and trainer set-up",
                                                "first optimizer step"}
    assert all(p["median"] > 0 for p in report["startup"]["phases"].values())
    assert report["memory"]["plan"]["total_mb"] > 0 and report["memory"]["before_training_rss_mb"] > 0
    gen = report["generation"]
    assert gen["batched_responses_per_s"]["median"] > 0 and gen["one_by_one_responses_per_s"]["median"] > 0
    assert gen["same_outputs"] is True
    assert report["curation"]["1x"]["mb_per_s"]["median"] > 0
    sharded = report["sharded"]
    assert set(sharded["steps"]["seconds_per_step"]) == {"FSDP2", "DDP"} and sharded["steps"]["ratio_fsdp2_to_ddp"]["median"] > 0
    assert set(sharded["loaders"]) == {"broadcast", "per_rank", "every_rank"}
    assert all(len(r["ranks"]) == 2 and r["model_mb"] > 0 for r in sharded["loaders"].values())
    from lima_recipes.bench.real_width import BF16, COMPILED, native_bf16

    width = report["real_width"]
    assert set(width["variants"]) == {"plain PyTorch loop", "ours (make train)", COMPILED} | ({BF16} if native_bf16() else set())
    assert (width["bf16_note"] is None) == native_bf16()
    # the compiled blocks keep the arithmetic and the dropout masks: the eager run's losses, step by step
    compiled = width["variants"][COMPILED]
    assert compiled["loss_rel_diff"] < 1e-4 and compiled["first_step_seconds"] > 0
    mix_width = report["real_width_mix"]
    assert set(mix_width["variants"]) == {"ours", "HF Trainer (default)", "HF Trainer (group_by_length)"}
    assert len({r["trained_tokens"] for r in mix_width["variants"].values()}) == 1  # the same examples, batched differently
    assert all(r["trained_tokens_per_s"]["median"] > 0 for r in mix_width["variants"].values())
    assert width["matmul_peak_gflops"] > 0 and width["flops_per_step"]["total"] > width["flops_per_step"]["dense"] > 0
    assert all(r["gflops"] > 0 and r["share_of_matmul_peak"] > 0 for r in width["variants"].values())
    shares = width["profile"]["share_by_kind"]
    assert sum(shares.values()) == pytest.approx(1.0) and shares["matrix multiplies"] > 0
    assert "target" in proc.stdout and "8 GPU" in proc.stdout and "9 sharded" in proc.stdout and "10 real width" in proc.stdout


def test_real_width_flops_count_each_matmul_once():
    from lima_recipes.bench.real_width import step_flops

    flops = step_flops("smollm2_135m", batch=2, length=512)
    tokens = 2 * 512
    assert flops["parameters_in_matmuls"] == 134_515_008  # tied: the embedding counted once, as the output layer
    assert flops["dense"] == 6 * 134_515_008 * tokens
    assert flops["attention"] == 12 * 30 * 576 * 512 * tokens
