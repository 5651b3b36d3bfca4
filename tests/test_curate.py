"""Curation: every LIMA rule drops what it should (and only that), HTML becomes Markdown, sites
are sampled with temperature, duplicates and eval overlaps are refused, output is deterministic
and atomic, and malformed input is reported with file:line under a budget."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from curate_fixtures import answer_html, prose, write_handwritten, write_stackexchange_dump

from lima_recipes.curate import rules
from lima_recipes.curate.budget import BadRecordBudget
from lima_recipes.curate.dedup import Deduplicator
from lima_recipes.curate.markdown import html_to_markdown
from lima_recipes.curate.candidates import Candidate, temperature_sample
from lima_recipes.curate.stackexchange import SiteStats, site_candidates
from lima_recipes.errors import ConfigError, DataFormatError

ROOT = Path(__file__).resolve().parents[1]


def test_html_becomes_markdown_keeping_code_and_lists_dropping_links_and_images():
    text = html_to_markdown(answer_html(1, 1400))
    assert "```\nvalue_1 = compute(1)\nprint(value_1)\n```" in text
    assert "- first point 1\n- second point 1" in text
    assert "the manual" in text and "example.invalid" not in text
    assert "diagram" not in text and "<" not in text


@pytest.mark.parametrize("title,reason", [
    ("How do I fix this?", "title refers to its body"),
    ("Help", "title too short to stand alone"),
    ("Why does integer division round toward zero in C?", None),
])
def test_title_rule(title, reason):
    assert rules.title_not_self_contained(title) == reason


def test_answer_rules():
    assert rules.answer_score_too_low(9, 10) and not rules.answer_score_too_low(10, 10)
    assert rules.answer_length_out_of_range("x" * 1199, 1200, 4096) == "answer shorter than 1200 characters"
    assert rules.answer_length_out_of_range("x" * 4097, 1200, 4096) == "answer longer than 4096 characters"
    assert rules.answer_length_out_of_range("x" * 2000, 1200, 4096) is None
    assert rules.written_in_first_person("In my view it works.") and rules.written_in_first_person("I think so.")
    assert not rules.written_in_first_person("```\nfor I in range(3): my_list.append(I)\n```\nIt iterates.")
    assert rules.refers_to_other_answers("As the other answers say, use a lock.")
    assert not rules.refers_to_other_answers("The answer is 42.")


@pytest.fixture
def dump(tmp_path):
    return write_stackexchange_dump(tmp_path / "se")


def se_cfg(**overrides):
    from types import SimpleNamespace

    base = dict(candidates_per_group=2000, min_score=10, min_response_chars=1200, max_response_chars=4096, filters=True)
    return SimpleNamespace(**(base | overrides))


def test_each_rule_drops_exactly_its_planted_answer(dump):
    stats = SiteStats()
    budget = BadRecordBudget(5)
    candidates = site_candidates(dump / "math.stackexchange.com", se_cfg(), random.Random(0), budget, stats)
    for reason in ("title refers to its body", "title too short to stand alone", "answer score below 10",
                   "answer shorter than 1200 characters", "answer longer than 4096 characters",
                   "answer in the first person", "answer refers to other answers"):
        assert stats.dropped[reason] >= 1, reason
    assert len(candidates) == 30  # only the 30 clean questions survive
    responses = " ".join(c.turns[1] for c in candidates)
    assert "In my experience" not in responses and "other answers" not in responses
    # the top answer is taken (written after its runner-up): its code names value_<seed>, seed < 1000
    import re

    assert all(int(re.search(r"value_(\d+) =", c.turns[1]).group(1)) < 1000 for c in candidates)
    assert budget.count == 1 and "Posts.xml:" in budget.examples[0] and "malformed XML row" in budget.examples[0]


def test_unfiltered_mode_keeps_what_the_rules_drop(dump):
    stats = SiteStats()
    unfiltered = site_candidates(dump / "math.stackexchange.com", se_cfg(filters=False), random.Random(0), BadRecordBudget(5), stats)
    filtered = site_candidates(dump / "math.stackexchange.com", se_cfg(), random.Random(0), BadRecordBudget(5), SiteStats())
    assert not stats.dropped  # no rule ran
    assert len(unfiltered) > len(filtered) == 30
    responses = [c.turns[1] for c in unfiltered]
    assert any(len(r) < 1200 for r in responses) and any(len(r) > 4096 for r in responses)
    assert {c.turns[1] for c in filtered} < set(responses)


def test_within_a_site_the_highest_scoring_questions_come_first_and_memory_is_bounded(dump):
    stats = SiteStats()
    candidates = site_candidates(dump / "math.stackexchange.com", se_cfg(candidates_per_group=5), random.Random(0), BadRecordBudget(5), stats)
    assert [c.priority for c in candidates] == [100.0, 99.0, 98.0, 97.0, 96.0]
    assert stats.dropped["below the site's top questions"] > 0


def test_prompt_is_the_title_or_the_body_at_random(dump):
    candidates = site_candidates(dump / "math.stackexchange.com", se_cfg(), random.Random(0), BadRecordBudget(5), SiteStats())
    titles = sum(c.turns[0].startswith("Why does the kalo") for c in candidates)
    assert 0 < titles < len(candidates)


def test_malformed_rows_past_the_budget_stop_with_file_and_line(dump):
    with pytest.raises(DataFormatError, match=r"Posts.xml:\d+: malformed XML row .* exceed curate.error_budget=0"):
        site_candidates(dump / "math.stackexchange.com", se_cfg(), random.Random(0), BadRecordBudget(0), SiteStats())


def test_temperature_sampling_follows_size_to_the_power_one_over_tau():
    groups = {
        "big": [Candidate("s", ("q", "a"), 0, "big", "") for _ in range(8000)],
        "small": [Candidate("s", ("q", "a"), 0, "small", "") for _ in range(1000)],
    }
    picks = temperature_sample(groups, 3000, 3.0, random.Random(0))
    share = sum(c.group == "big" for c in picks) / len(picks)
    expected = 8000 ** (1 / 3) / (8000 ** (1 / 3) + 1000 ** (1 / 3))  # 20 / 30, not 8000 / 9000
    assert abs(share - expected) < 0.03


def test_dedup_catches_exact_and_near_copies_and_keeps_distinct_text():
    dedup = Deduplicator(0.8, 128)
    text = prose(1, 1500)
    assert dedup.duplicate("Question one?", text) is None
    assert dedup.duplicate("QUESTION one", text.upper()) == "exact duplicate"  # normalised: case and punctuation
    assert dedup.duplicate("A differently worded question", text.replace(".", "!", 3) + " one more clause") == "near duplicate"
    assert dedup.duplicate("question ONE?", prose(3, 1500)) == "duplicate prompt"
    assert dedup.duplicate("Another question", prose(2, 1500)) is None


def curate_cfg(tmp_path, dump, **extra):
    from lima_recipes.config import compose

    overrides = [
        f"curate.output={tmp_path}/out/train.jsonl",
        f"curate.sources.stackexchange_stem.path={dump}", "curate.sources.stackexchange_stem.target=100",
        f"curate.sources.stackexchange_other.path={dump}", "curate.sources.stackexchange_other.target=5",
        f"curate.sources.handwritten.path={write_handwritten(tmp_path / 'hand.jsonl')}",
        *[f"{k}={v}" for k, v in extra.items()],
    ]
    return compose(overrides, config_name="curate").curate


def test_pipeline_mixes_sources_writes_atomically_and_documents_itself(tmp_path, dump):
    from lima_recipes.curate.pipeline import curate

    card = curate(curate_cfg(tmp_path, dump))
    out = tmp_path / "out"
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    sources = {name: s for name, s in card["sources"].items()}
    assert sources["stackexchange_stem"]["delivered"] == 33  # 30 math + 4 physics - 1 near duplicate
    assert sources["stackexchange_stem"]["dropped"]["near duplicate"] == 1
    assert sources["stackexchange_other"]["delivered"] == 5 and set(sources["stackexchange_other"]["groups"]) <= {"cooking", "travel"}
    assert sources["handwritten"]["delivered"] == 6
    assert sources["wikihow"]["skipped"].startswith("no input given")
    assert len(rows) == card["examples"] == 44
    assert sorted({r["source"] for r in rows}) == ["handwritten", "stackexchange_other", "stackexchange_stem"]
    assert any(len(r["conversations"]) == 4 for r in rows)  # hand-written chains pass through whole
    assert {p.name for p in out.iterdir()} == {"train.jsonl", "data_card.json", "data_card.md", "data_card_lengths.png"}
    md = (out / "data_card.md").read_text()
    assert "| stackexchange_stem | 100 | 33 |" in md and "answer in the first person" in md


def test_same_inputs_and_seed_give_the_same_bytes(tmp_path, dump):
    from lima_recipes.curate.pipeline import curate

    curate(curate_cfg(tmp_path, dump))
    first = (tmp_path / "out" / "train.jsonl").read_bytes()
    curate(curate_cfg(tmp_path, dump))
    assert (tmp_path / "out" / "train.jsonl").read_bytes() == first
    curate(curate_cfg(tmp_path, dump, **{"curate.seed": 7}))
    assert (tmp_path / "out" / "train.jsonl").read_bytes() != first


def test_examples_overlapping_eval_prompts_are_dropped(tmp_path, dump):
    from lima_recipes.curate.pipeline import curate

    hand = tmp_path / "hand.jsonl"
    cfg = curate_cfg(tmp_path, dump)
    first_prompt = json.loads(hand.read_text().splitlines()[0])["conversations"][0]
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"id": "e1", "prompt": first_prompt}) + "\n")
    cfg.decontamination.eval_paths = [str(evals)]
    card = curate(cfg)
    assert card["sources"]["handwritten"]["dropped"]["overlaps a dev/test prompt"] == 1
    assert card["sources"]["handwritten"]["delivered"] == 5


def test_missing_input_path_is_one_clear_error(tmp_path, dump):
    from lima_recipes.curate.pipeline import curate

    cfg = curate_cfg(tmp_path, dump)
    cfg.sources.wikihow.path = str(tmp_path / "no-such-dump")
    with pytest.raises(ConfigError, match=r"curate.sources.wikihow.path=.*no-such-dump: no such file or folder"):
        curate(cfg)
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.slow
def test_make_curate_output_trains_the_tiny_model(tmp_path, dump):
    env_args = dict(cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = tmp_path / "curated" / "train.jsonl"
    hand = write_handwritten(tmp_path / "hand.jsonl")
    curate = subprocess.run([sys.executable, "recipes/curate.py", f"curate.output={out}",
                             f"curate.sources.stackexchange_stem.path={dump}", f"curate.sources.handwritten.path={hand}",
                             f"hydra.run.dir={tmp_path}/hydra"], **env_args)
    assert curate.returncode == 0, curate.stderr[-2000:]
    assert "wrote" in curate.stdout and out.is_file()
    train = subprocess.run([sys.executable, "recipes/train.py", "data=curated", f"data.path={out}", "logger=csv",
                            "trainer.max_epochs=1", "trainer.checkpoint_epochs=[1]", "trainer.enable_progress_bar=false",
                            "data.max_length=512", f"run.output_root={tmp_path}/runs", f"data.cache_dir={tmp_path}/cache"], **env_args)
    assert train.returncode == 0, train.stderr[-2000:]
    assert list((tmp_path / "runs").rglob("COMPLETED"))


def test_a_question_whose_top_answer_fails_is_dropped_not_answered_by_the_runner_up(tmp_path):
    from curate_fixtures import write_site

    write_site(tmp_path / "site", [{"title": "Why does the sabo index overflow at large sizes?", "score": 50, "answers": [
        (40, answer_html(1, 2000, extra="I think the index is wrong.")),  # top answer, first person
        (30, answer_html(2, 2000)),                                      # clean runner-up
    ]}])
    stats = SiteStats()
    out = site_candidates(tmp_path / "site", se_cfg(), random.Random(0), BadRecordBudget(0), stats)
    assert out == [] and stats.dropped["answer in the first person"] == 1


def test_curating_with_no_inputs_at_all_is_an_error_not_an_empty_dataset(tmp_path):
    from lima_recipes.config import compose
    from lima_recipes.curate.pipeline import curate

    cfg = compose([f"curate.output={tmp_path}/out/train.jsonl"], config_name="curate").curate
    with pytest.raises(ConfigError, match=r"no source has an input: give curate.sources.<name>.path"):
        curate(cfg)
    assert not (tmp_path / "out").exists()


def test_ablation_curation_presets_filtered_and_unfiltered_on_the_same_dump(tmp_path, dump):
    """The quality ablation's two data sets from one dump: the unfiltered one keeps what LIMA's
    rules drop, the filtered one does not."""
    from lima_recipes.config import compose
    from lima_recipes.curate.pipeline import curate

    def run(preset):
        cfg = compose([f"curate={preset}", f"curate.output={tmp_path}/{preset}/train.jsonl",
                       f"curate.sources.stackexchange.path={dump}"], config_name="curate").curate
        curate(cfg)
        return [json.loads(line) for line in (tmp_path / preset / "train.jsonl").read_text().splitlines()]

    filtered, unfiltered = run("ablation_stackexchange"), run("ablation_stackexchange_unfiltered")
    lengths = [len(r["conversations"][1]) for r in unfiltered]
    assert all(1200 <= len(r["conversations"][1]) <= 4096 for r in filtered)
    assert len(unfiltered) > len(filtered) and (min(lengths) < 1200 or max(lengths) > 4096)
    assert compose(["curate=ablation_wikihow"], config_name="curate").curate.sources.wikihow.target == 6000
