"""Judged evaluation against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/judge_server.py):
position swapping, concurrency, retries after 429/500, the disk cache and resume, unparseable
replies, bad inputs; the statistics against hand-computed values; dev selection."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import numpy as np
import pytest

from judge_server import JudgeServer, answers_of
from lima_recipes.errors import ConfigError, DataFormatError, JudgeError
from lima_recipes.eval.evaluate import JudgeRun, absolute, likert, pairwise
from lima_recipes.eval.generations import load_generations, paired_ids
from lima_recipes.eval.judge_prompts import load_judge_prompt
from lima_recipes.eval.judges import OpenAIJudge, ReplyCache
from lima_recipes.eval.judging import RequestCount
from lima_recipes.eval.stats import mean_with_interval, pair_outcome, shares


# ---------------------------------------------------------------- statistics, by hand

def test_pair_outcome_counts_an_order_dependent_verdict_as_a_tie():
    assert pair_outcome("A", "B") == "win"  # ours preferred as A and as B
    assert pair_outcome("B", "A") == "loss"
    assert pair_outcome("C", "C") == "tie"
    assert pair_outcome("A", "A") == "tie"  # the judge preferred position A both times
    assert pair_outcome("A", "C") == "tie"
    assert pair_outcome(None, "B") == "invalid"


def test_shares_and_bootstrap_interval_against_hand_computed_values():
    outcomes = ["win"] * 6 + ["tie"] * 3 + ["loss"] * 1 + ["invalid"] * 2
    result = shares(outcomes, ("win", "tie", "loss"), samples=20000, seed=0)
    assert [result[k]["count"] for k in ("win", "tie", "loss")] == [6, 3, 1]
    assert [result[k]["percent"] for k in ("win", "tie", "loss")] == pytest.approx([60.0, 30.0, 10.0])  # invalid left out
    # All wins: every resample is all wins.
    assert shares(["win"] * 7, ("win", "tie", "loss"))["win"]["ci95"] == [100.0, 100.0]
    # n = 400 at 50%: the interval is close to the normal one, 50 +- 1.96 * sqrt(.25 / 400) = 50 +- 4.9.
    half = shares(["win", "loss"] * 200, ("win", "tie", "loss"), samples=20000, seed=1)["win"]["ci95"]
    assert half[0] == pytest.approx(45.1, abs=0.6) and half[1] == pytest.approx(54.9, abs=0.6)


def test_multinomial_bootstrap_matches_resampling_prompt_indices():
    outcomes = ["win"] * 13 + ["tie"] * 5 + ["loss"] * 7
    ours = shares(outcomes, ("win", "tie", "loss"), samples=20000, seed=3)
    codes = np.array([("win", "tie", "loss").index(o) for o in outcomes])
    idx = np.random.default_rng(7).integers(0, len(codes), size=(20000, len(codes)))
    for k, name in enumerate(("win", "tie", "loss")):
        reference = np.percentile((codes[idx] == k).mean(axis=1) * 100, [2.5, 97.5])
        assert ours[name]["ci95"] == pytest.approx(reference, abs=1.5)


def test_likert_interval_is_mean_plus_minus_1_96_standard_errors():
    result = mean_with_interval([4.0, 5.0, 6.0])
    half = 1.96 * 1.0 / math.sqrt(3)  # sample sd of 4, 5, 6 is 1
    assert result["mean"] == 5.0 and result["ci95"] == pytest.approx([5 - half, 5 + half])


# ---------------------------------------------------------------- prompts, verdicts, files

def test_verdict_parsing_and_literal_answers():
    pairwise_prompt = load_judge_prompt("pairwise_v1", "pairwise")
    assert pairwise_prompt.parse("B is clearer.\n[[A]]") == "A"
    assert pairwise_prompt.parse("final: [[ c ]]") == "C"
    assert pairwise_prompt.parse("[[A]] at first, but [[B]] overall") is None  # ambiguous
    assert pairwise_prompt.parse("A is better.") is None
    assert load_judge_prompt("absolute_v1", "absolute").parse("[[Excellent]]") == "Excellent"
    assert load_judge_prompt("likert_v1", "likert").parse("[[7]]") is None
    user = pairwise_prompt.messages(question="q", answer_a="use {answer_b} here", answer_b="B!")[1]["content"]
    assert "use {answer_b} here" in user and "B!" in user
    assert pairwise_prompt.version.startswith("pairwise_v1@")
    with pytest.raises(ConfigError, match="pairwise_v1"):
        load_judge_prompt("pairwise_v9", "pairwise")


def write_generations(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "prompt": p, "response": r}) + "\n" for i, p, r in rows))
    return path


def test_mismatched_prompt_sets_are_reported_with_their_ids(tmp_path):
    ours = write_generations(tmp_path / "ours.jsonl", [("1", "p1", "a"), ("2", "p2", "b"), ("3", "p3", "c")])
    base = write_generations(tmp_path / "base.jsonl", [("1", "p1", "x"), ("2", "p2", "y"), ("4", "p4", "z")])
    o, b = load_generations(ours, "ours"), load_generations(base, "baseline")
    with pytest.raises(DataFormatError, match=r"1 id\(s\) only in ours=.*: 3; 1 id\(s\) only in baseline=.*: 4; set eval.intersect=true"):
        paired_ids(o, b, False, str(ours), str(base))
    assert paired_ids(o, b, True, str(ours), str(base)) == ["1", "2"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "prompt": "p", "response": "r"}\n{"id": "2", "response": "r"}\n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: missing or invalid field\(s\) prompt"):
        load_generations(bad, "ours")


# ---------------------------------------------------------------- the HTTP judge

def judge_cfg(server: JudgeServer | None, tmp_path: Path, **overrides):
    from lima_recipes.config import compose

    args = ["judge=openai", f"judge.base_url={server.url if server else 'http://127.0.0.1:9/v1'}", "judge.model=scripted-judge",
            "judge.api_key_env=LIMA_TEST_JUDGE_KEY", f"judge.cache_dir={tmp_path}/cache", "judge.max_retries=3"]
    return compose(args + [f"{k}={v}" for k, v in overrides.items()], config_name="eval")


def judge_run(cfg, prompt: str = "pairwise_v1") -> JudgeRun:
    return JudgeRun(judge=OpenAIJudge(cfg.judge), prompt=load_judge_prompt(prompt, prompt), cache=ReplyCache(cfg.judge.cache_dir),
                    invalid_retries=cfg.eval.invalid_retries, bootstrap_samples=2000, seed=0, count=RequestCount())


def prefer_longer(messages: list[dict]) -> str:
    """A judge that likes longer answers, with a blind spot: for prompts containing "coin" it
    always says A (position bias), which the swap turns into a tie."""
    got = answers_of(messages)
    if "coin" in got["question"]:
        return "Looks fine. [[A]]"
    verdict = "A" if len(got["a"]) > len(got["b"]) else "B" if len(got["b"]) > len(got["a"]) else "C"
    return f"Reasoning about both answers.\n[[{verdict}]]"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("LIMA_TEST_JUDGE_KEY", "test-key")


@pytest.fixture
def pair_files(tmp_path):
    ours = write_generations(tmp_path / "ours.jsonl", [
        ("1", "Explain tides.", "A long and careful answer."), ("2", "Name a colour.", "Red"),
        ("3", "Say hi.", "Hello"), ("4", "Flip a coin?", "Heads, probably."), ("5", "Why sky blue?", "Rayleigh scattering of light.")])
    base = write_generations(tmp_path / "base.jsonl", [
        ("1", "Explain tides.", "Moon."), ("2", "Name a colour.", "Deep ultramarine blue"),
        ("3", "Say hi.", "Hi yo"), ("4", "Flip a coin?", "Tails."), ("5", "Why sky blue?", "Because.")])
    return str(ours), str(base)


def test_pairwise_asks_both_orders_and_counts_wins_ties_losses(tmp_path, key, pair_files):
    with JudgeServer(prefer_longer) as server:
        summary, records = pairwise(judge_run(judge_cfg(server, tmp_path)), *pair_files, intersect=False)
    assert server.answered == 10  # 5 prompts x 2 orders
    asked = {(answers_of(r["messages"])["a"], answers_of(r["messages"])["b"]) for r in server.requests}
    assert ("A long and careful answer.", "Moon.") in asked and ("Moon.", "A long and careful answer.") in asked
    # wins: 1 and 5 (longer); loss: 2; ties: 3 (same length) and 4 (position bias flips with the swap)
    assert {r["id"]: r["outcome"] for r in records} == {"1": "win", "2": "loss", "3": "tie", "4": "tie", "5": "win"}
    assert [summary["results"][k]["count"] for k in ("win", "tie", "loss")] == [2, 2, 1]
    assert summary["results"]["win"]["percent"] == pytest.approx(40.0) and summary["invalid"] == 0


def test_requests_run_concurrently_within_the_pool(tmp_path, key):
    rows = [(str(i), f"question {i}", "x" * i) for i in range(12)]
    ours = write_generations(tmp_path / "o.jsonl", rows)
    with JudgeServer(lambda m: "[[Pass]]", delay_s=0.15) as server:
        summary, _ = absolute(judge_run(judge_cfg(server, tmp_path, **{"judge.concurrency": 4}), "absolute_v1"), str(ours))
    assert server.max_in_flight == 4  # bounded by the pool, and really concurrent
    assert summary["results"]["Pass"]["count"] == 12


def test_429_and_500_are_retried(tmp_path, key, pair_files):
    with JudgeServer(prefer_longer, fail_first=(429, 500, 503)) as server:
        summary, _ = pairwise(judge_run(judge_cfg(server, tmp_path, **{"judge.concurrency": 1})), *pair_files, intersect=False)
    assert server.statuses[:3] == [429, 500, 503] and server.answered == 10
    assert [summary["results"][k]["count"] for k in ("win", "tie", "loss")] == [2, 2, 1]


def test_cache_makes_a_rerun_free_and_an_interrupted_run_resumes(tmp_path, key, pair_files):
    cfg = judge_cfg(None, tmp_path, **{"judge.concurrency": 1, "judge.max_retries": 0})
    # The server dies (drops every connection) after 4 answers: the run stops, the 4 verdicts stay cached.
    with JudgeServer(prefer_longer) as server:
        server.fail_first = []
        original = server.policy
        answered = []

        def flaky(messages):
            if len(answered) >= 4:
                raise RuntimeError("down")
            answered.append(1)
            return original(messages)

        server.policy = flaky
        cfg.judge.base_url = server.url
        with pytest.raises(JudgeError, match="is unreachable"):
            pairwise(judge_run(cfg), *pair_files, intersect=False)
    assert len(list(Path(cfg.judge.cache_dir).rglob("*.json"))) == 4
    with JudgeServer(prefer_longer) as server:
        cfg.judge.base_url = server.url
        run = judge_run(cfg)
        summary, _ = pairwise(run, *pair_files, intersect=False)
        assert server.answered == 6 and run.count.cached == 4  # resumed: only the missing 6 asked
        run = judge_run(cfg)
        again, _ = pairwise(run, *pair_files, intersect=False)
        assert server.answered == 6 and run.count.new == 0  # a re-run costs nothing
    assert again["results"] == summary["results"]


def test_unparseable_replies_are_retried_then_counted_invalid(tmp_path, key):
    ours = write_generations(tmp_path / "o.jsonl", [("1", "fixable", "r1"), ("2", "hopeless", "r2")])

    def sloppy(messages):
        if "hopeless" in messages[1]["content"]:
            return "I would rather not say."
        # answers the follow-up that asks for the verdict alone
        return "[[5]]" if messages[-1]["content"].startswith("Your reply did not end") else "Good answer, a five."

    with JudgeServer(sloppy) as server:
        summary, records = likert(judge_run(judge_cfg(server, tmp_path, **{"eval.invalid_retries": 2}), "likert_v1"), str(ours))
    assert [r["score"] for r in records] == [5, None]
    assert len(records[0]["replies"]) == 2 and len(records[1]["replies"]) == 3  # 1 + 2 retries
    assert summary["invalid"] == 1 and summary["results"]["helpfulness"]["mean"] == 5.0


def test_likert_mean_over_prompts_of_sample_means(tmp_path, key):
    rows = [{"id": "a", "prompt": "qa", "response": "x" * n, "sample": s} for s, n in enumerate((2, 4))]
    rows += [{"id": "b", "prompt": "qb", "response": "x" * n, "sample": s} for s, n in enumerate((6, 6))]
    path = tmp_path / "o.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # score = response length / 2 -> prompt a: (1 + 2) / 2 = 1.5, prompt b: 3
    with JudgeServer(lambda m: f"[[{len(answers_of(m)['answer']) // 2}]]") as server:
        summary, _ = likert(judge_run(judge_cfg(server, tmp_path), "likert_v1"), str(path))
    h = summary["results"]["helpfulness"]
    half = 1.96 * float(np.std([1.5, 3.0], ddof=1)) / math.sqrt(2)
    assert h["mean"] == pytest.approx(2.25) and h["ci95"] == pytest.approx([2.25 - half, 2.25 + half])
    assert summary["results"]["distribution"] == {"1": 1, "2": 1, "3": 2, "4": 0, "5": 0, "6": 0}


def test_judge_errors_are_one_line_naming_the_fix(tmp_path, monkeypatch, pair_files):
    monkeypatch.delenv("LIMA_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(ConfigError, match="set LIMA_TEST_JUDGE_KEY"):
        OpenAIJudge(judge_cfg(None, tmp_path).judge)
    monkeypatch.setenv("LIMA_TEST_JUDGE_KEY", "wrong-key")
    with JudgeServer(prefer_longer) as server:
        with pytest.raises(JudgeError, match="rejected the API key"):
            pairwise(judge_run(judge_cfg(server, tmp_path)), *pair_files, intersect=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = judge_cfg(None, tmp_path, **{"judge.max_retries": 0})
    cfg.judge.base_url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(JudgeError, match=rf"judge at http://127.0.0.1:{port}/v1 is unreachable") as err:
        pairwise(judge_run(cfg), *pair_files, intersect=False)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- make eval, reports, W&B

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_make_eval_writes_report_chart_and_wandb_tables(tmp_path, key, pair_files, monkeypatch):
    from lima_recipes.eval.app import run_eval

    run = tmp_path / "outputs" / "tiny-sample" / "abc123"
    (run / "generations").mkdir(parents=True)
    ours = Path(pair_files[0]).rename(run / "generations" / "sample.jsonl")
    monkeypatch.setenv("WANDB_MODE", "offline")
    with JudgeServer(prefer_longer) as server:
        cfg = judge_cfg(server, tmp_path, ours=str(ours), baseline=pair_files[1], **{"eval.wandb": "true"})
        run_eval(cfg)
    out = run / "eval" / "pairwise-tiny-sample_abc123_sample-vs-base.json"
    summary = json.loads(out.read_text())
    assert [summary["results"][k]["count"] for k in ("win", "tie", "loss")] == [2, 2, 1]
    assert summary["judge"]["model"] == "scripted-judge" and summary["prompt_version"].startswith("pairwise_v1@")
    report = out.with_suffix(".md").read_text()
    assert "| win | 40.0% | 2 |" in report and "![pairwise](" in report
    assert out.with_suffix(".png").stat().st_size > 1000
    assert len(out.with_suffix(".judgements.jsonl").read_text().splitlines()) == 5
    tables = list((run / "wandb").glob("offline-run-*/files/media/table/eval/pairwise/*.table.json"))
    assert {t.name.split("_")[0] for t in tables} == {"results", "judgements"}


def test_eval_cli_errors_are_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    ours = write_generations(tmp_path / "o.jsonl", [("1", "p", "r")])
    for args, expected in (
        (["eval=pairwise", "judge=openai", f"ours={ours}"], "error: eval=pairwise needs baseline=<generations.jsonl>"),
        (["eval=absolute", f"ours={ours}"], "error: eval=absolute needs a judge: judge=openai"),
        (["eval=absolute", "judge=openai", f"ours={ours}"], "error: judge=openai needs an API key: set OPENAI_API_KEY"),
        (["eval=absolute", "judge=openai", f"ours={tmp_path}/none.jsonl"], f"error: ours={tmp_path}/none.jsonl: no such file"),
        (["judge.concurency=2"], "error: unknown config key 'judge.concurency' (did you mean 'judge.concurrency'?)"),
    ):
        proc = subprocess.run([sys.executable, "recipes/eval.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(expected), proc.stderr
        assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- dev selection

@pytest.fixture
def run_with_epochs(tmp_path):
    """A run directory with export/ and three kept epochs (HF directories) of different (random) weights."""
    from lima_recipes.config import compose
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.build import build_model, load_tokenizer
    from lima_recipes.model.export import export_model

    cfg = compose(["logger=csv"])
    tokenizer = load_tokenizer(cfg.model)
    template = build_template(cfg.template)
    template.install(tokenizer)
    run = tmp_path / "run"
    for epoch in (1, 2, 3):
        model = build_model(cfg.model, tokenizer, seed=epoch)
        export_model(model, tokenizer, template.end_of_turn(tokenizer), cfg.generation, run / "checkpoints" / f"epoch={epoch:02d}",
                     metadata={"epoch": epoch})
    export_model(model, tokenizer, template.end_of_turn(tokenizer), cfg.generation, run / "export", metadata={"epoch": "final"})
    return run


def dev_cfg(tmp_path, server=None, **overrides):
    base = {"eval": "dev_select", "eval.epochs": "[1,2,3]", "prompts.max_prompts": 3, "generation.max_new_tokens": 12,
            "eval.wandb": "false", **overrides}
    if server is None:
        from lima_recipes.config import compose

        return compose(["judge=none", *[f"{k}={v}" for k, v in base.items()]], config_name="eval")
    return judge_cfg(server, tmp_path, **base)


def export_matches(run: Path, epoch: int) -> bool:
    import torch
    from safetensors.torch import load_file

    exported = load_file(run / "export" / "model.safetensors")
    checkpoint = load_file(run / "checkpoints" / f"epoch={epoch:02d}" / "model.safetensors")
    return exported.keys() == checkpoint.keys() and all(torch.equal(exported[k], checkpoint[k]) for k in exported)


@pytest.mark.slow
def test_dev_select_promotes_the_checkpoint_the_judge_prefers(tmp_path, key, run_with_epochs):
    from itertools import combinations

    from lima_recipes.eval.app import run_dev_select

    with JudgeServer(prefer_longer) as server:
        record = run_dev_select(dev_cfg(tmp_path, server), run_with_epochs)
    # The scripted judge prefers the longer response: recount the round robin from the files.
    gens = {e: load_generations(run_with_epochs / "generations" / "dev_select" / f"sample_dev-epoch={e:02d}.jsonl", "x")
            for e in (1, 2, 3)}
    score = {1: 0.0, 2: 0.0, 3: 0.0}
    for a, b in combinations((1, 2, 3), 2):
        for pid in gens[a]:
            la, lb = len(gens[a][pid][0]["response"]), len(gens[b][pid][0]["response"])
            score[a] += 1.0 if la > lb else 0.5 if la == lb else 0.0
            score[b] += 1.0 if lb > la else 0.5 if la == lb else 0.0
    expected = max((1, 2, 3), key=lambda e: score[e])
    assert record["winner"] == expected and record["scores"] == {str(e): s for e, s in score.items()}
    assert server.answered == 3 * 3 * 2  # 3 pairs x 3 prompts x 2 orders
    assert export_matches(run_with_epochs, expected)
    meta = json.loads((run_with_epochs / "export" / "lima_recipes.json").read_text())
    assert meta["epoch"] == expected and "round robin" in meta["selected_by"]
    assert f"**epoch {expected}**" in (run_with_epochs / "eval" / "dev_select.md").read_text()


@pytest.mark.slow
def test_dev_select_without_a_judge_ranks_by_automatic_metrics(tmp_path, run_with_epochs, monkeypatch):
    from lima_recipes.eval import dev_select as module
    from lima_recipes.eval.app import run_dev_select

    # Make the end-of-turn shares differ by epoch: epoch 2 ends most responses at the EOT token.
    shares = {1: 0.0, 2: 1.0, 3: 0.5}
    real = module.automatic_metrics

    def scripted(generations):
        metrics = real(generations)
        metrics["stopped_at_eot"] = shares[int(generations[0]["model"].rsplit("=", 1)[1])]
        return metrics

    monkeypatch.setattr(module, "automatic_metrics", scripted)
    record = run_dev_select(dev_cfg(tmp_path), run_with_epochs)
    assert record["winner"] == 2 and record["method"] == "automatic metrics" and "no judge" in record["reason"]
    assert export_matches(run_with_epochs, 2)
    # A re-run reuses the generations (resume) and selects the same epoch.
    stamp = (run_with_epochs / "generations" / "dev_select" / "sample_dev-epoch=01.jsonl").stat().st_mtime_ns
    assert run_dev_select(dev_cfg(tmp_path), run_with_epochs)["winner"] == 2
    assert (run_with_epochs / "generations" / "dev_select" / "sample_dev-epoch=01.jsonl").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_hf_judge_runs_a_local_model_and_counts_its_unparseable_replies(tmp_path, run_with_epochs):
    from lima_recipes.config import compose
    from lima_recipes.eval.judges import HFJudge

    ours = write_generations(tmp_path / "o.jsonl", [("1", "Say hi.", "Hello"), ("2", "Name a colour.", "Red")])
    cfg = compose(["judge=hf", f"judge.model={run_with_epochs / 'export'}", "judge.max_tokens=6",
                   f"judge.cache_dir={tmp_path}/cache", "eval.invalid_retries=1"], config_name="eval")
    run = JudgeRun(judge=HFJudge(cfg.judge), prompt=load_judge_prompt("absolute_v1", "absolute"), cache=ReplyCache(cfg.judge.cache_dir),
                   invalid_retries=1, bootstrap_samples=100, seed=0, count=RequestCount())
    summary, records = absolute(run, str(ours))
    # A randomly initialised model never writes [[Pass]]: every reply is kept and counted invalid.
    assert summary["invalid"] == 2 and all(len(r["replies"]) == 2 for r in records)
    assert run.count.new == 4
    rerun = JudgeRun(**{**vars(run), "count": RequestCount()})
    absolute(rerun, str(ours))
    assert rerun.count.new == 0 and rerun.count.cached == 4
    with pytest.raises(Exception, match=r"judge.model=/no/such/judge: no config.json"):
        HFJudge(compose(["judge=hf", "judge.model=/no/such/judge"], config_name="eval").judge)._load()
