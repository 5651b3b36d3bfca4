"""`make pairs` against the scripted judge server: exactly the pairs both orders agree on are
kept, with their provenance, in the format stage=dpo reads."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from judge_server import JudgeServer, answers_of


def by_length(messages: list[dict]) -> str:
    """Prefers the longer response; within 5 characters it always says A (a position bias the
    swapped order exposes); equal lengths are a tie."""
    got = answers_of(messages)
    a, b = len(got["a"]), len(got["b"])
    if a == b:
        return "Equal. [[C]]"
    if abs(a - b) < 5:
        return "The first one. [[A]]"
    return "[[A]]" if a > b else "[[B]]"


def pairs_cfg(server: JudgeServer, tmp_path: Path, export: Path, *overrides: str):
    from lima_recipes.config import compose

    return compose([f"run={export}", "judge=openai", f"judge.base_url={server.url}", "judge.model=scripted-judge",
                    "judge.api_key_env=LIMA_TEST_JUDGE_KEY", f"judge.cache_dir={tmp_path}/judge-cache", "generation.max_new_tokens=24",
                    f"output={tmp_path}/pairs.jsonl", *overrides], config_name="pairs")


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("LIMA_TEST_JUDGE_KEY", "test-key")


def expected_pairs(generations: list[dict]) -> set[tuple[str, int, int]]:
    """(prompt id, chosen sample, rejected sample) that by_length prefers in both orders."""
    expected = set()
    by_prompt: dict[str, list[dict]] = {}
    for g in generations:
        by_prompt.setdefault(g["id"], []).append(g)
    for pid, samples in by_prompt.items():
        for a, b in itertools.combinations(samples, 2):
            if a["response"].strip() != b["response"].strip() and abs(len(a["response"]) - len(b["response"])) >= 5:
                chosen, rejected = (a, b) if len(a["response"]) > len(b["response"]) else (b, a)
                expected.add((pid, chosen["sample"], rejected["sample"]))
    return expected


@pytest.mark.slow
def test_only_pairs_the_judge_agrees_on_in_both_orders_are_kept(tmp_path, key, sft_export):
    from lima_recipes.data.preferences import convert_pairs
    from lima_recipes.data.sources import RecordSource
    from lima_recipes.eval.pairs import build_pairs

    with JudgeServer(by_length) as server:
        output, summary = build_pairs(pairs_cfg(server, tmp_path, sft_export, "num_samples=3"))
    generations = [json.loads(line) for line in Path(summary["generations"]).read_text().splitlines()]
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(generations) == 12 * 3
    kept = {(r["meta"]["prompt_id"], r["meta"]["samples"]["chosen"], r["meta"]["samples"]["rejected"]) for r in records}
    assert kept == expected_pairs(generations) and len(kept) == len(records) > 0
    assert summary["kept"] == len(records) and summary["order_dependent"] > 0
    assert server.answered == 2 * summary["compared"] == summary["requests"]["new"]
    assert summary["compared"] + summary["identical_left_out"] == 12 * 3
    assert summary["agreed"] + summary["ties"] + summary["invalid"] == summary["compared"]
    text = {(g["id"], g["sample"]): g["response"] for g in generations}
    for r in records:
        assert (r["chosen"], r["rejected"]) == (text[r["meta"]["prompt_id"], r["meta"]["samples"]["chosen"]],
                                                text[r["meta"]["prompt_id"], r["meta"]["samples"]["rejected"]])
        assert r["meta"]["judge"]["model"] == "scripted-judge" and r["meta"]["judge_prompt"].startswith("pairwise_v1@")
        assert r["meta"]["generation_seed"] == 1234 and r["meta"]["model"] == str(sft_export)
    assert summary["chosen_to_rejected_length"] > 1  # this judge prefers longer answers, and the summary shows it
    assert len(convert_pairs(RecordSource("pairs", path=str(output)).records())) == len(records)  # what stage=dpo reads

    # a re-run asks the judge nothing (cached replies); one pair per prompt at most
    with JudgeServer(by_length) as server:
        output, again = build_pairs(pairs_cfg(server, tmp_path, sft_export, "num_samples=3", "max_pairs_per_prompt=1"))
    assert server.answered == 0 and again["requests"]["cached"] == 2 * summary["compared"]
    assert again["kept"] == again["prompts_with_a_pair"] == len({pid for pid, _, _ in kept})


@pytest.mark.parametrize("overrides,expected", [
    (["num_samples=1", "judge=openai"], "num_samples=1: a pair needs at least 2 responses per prompt"),
    ([], "make pairs needs a judge: judge=openai"),
])
def test_a_pairs_run_that_cannot_make_pairs_stops_before_generating(tmp_path, overrides, expected):
    from lima_recipes.config import compose
    from lima_recipes.errors import ConfigError
    from lima_recipes.eval.pairs import build_pairs

    with pytest.raises(ConfigError, match=expected):
        build_pairs(compose([f"run={tmp_path}/nothing", *overrides], config_name="pairs"))
