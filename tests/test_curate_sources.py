"""wikiHow, Reddit and Natural Instructions connectors: each rule and cleaning step, category
balance, zstd input, malformed records under the budget."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest
from curate_fixtures import write_natural_instructions, write_reddit, write_wikihow

from lima_recipes.curate.budget import BadRecordBudget
from lima_recipes.curate.candidates import temperature_sample
from lima_recipes.curate.natural_instructions import natural_instructions_groups
from lima_recipes.curate.reddit import reddit_groups
from lima_recipes.curate.wikihow import clean_article, how_to_prompt, wikihow_groups


def src(**kw):
    base = dict(min_score=10, min_response_chars=0, max_response_chars=None, candidates_per_group=2000, target=50,
                drop_sections=["Related wikiHows", "References", "Sources and Citations", "Video", "Quick Summary"],
                subreddits=["WritingPrompts"])
    return SimpleNamespace(**(base | kw))


def test_wikihow_cleaning():
    text = clean_article("This article shows how. Read [this](http://x) ![img](y.png)\n\n## Steps\n1. Do it.\n\n"
                         "## Related wikiHows\n- Other\n\n## Tips\n- Careful", ["Related wikiHows"])
    assert text.startswith("The following answer shows how.")
    assert "Read this" in text and "http" not in text and "img" not in text
    assert "## Tips" in text and "Related" not in text and "Other" not in text
    assert how_to_prompt("Grow Herbs") == "How to grow Herbs?" and how_to_prompt("How to Bake Bread") == "How to Bake Bread?"


def test_wikihow_groups_by_category_and_skips_malformed_lines(tmp_path):
    budget, dropped = BadRecordBudget(5), Counter()
    groups = wikihow_groups(write_wikihow(tmp_path / "wh.jsonl"), src(min_response_chars=200), random.Random(0), budget, dropped)
    assert {k: len(v) for k, v in groups.items()} == {"Cars": 12, "Food": 1, "Garden": 3}
    from lima_recipes.curate.wikihow import top_category

    assert top_category("Home and Garden » Cleaning") == top_category(["Home and Garden", "Cleaning"]) == "Home and Garden"
    assert budget.count == 1 and "wh.jsonl:18" in budget.examples[0]
    assert dropped["article too short after cleaning"] == 1
    garden = groups["Garden"][0]
    assert garden.turns[0].startswith("How to grow Dalsa") and garden.turns[1].startswith("The following answer")
    food = groups["Food"][0].turns[1]
    assert "## Steps" in food and "watch" not in food  # HTML converted, the Video section dropped


def test_categories_are_balanced_at_infinite_temperature_and_proportional_at_one():
    from lima_recipes.curate.candidates import Candidate

    groups = {"big": [Candidate("w", ("q", "a"), 0, "big", "")] * 900, "small": [Candidate("w", ("q", "a"), 0, "small", "")] * 100}
    uniform = Counter(c.group for c in temperature_sample(groups, 100, float("inf"), random.Random(1)))
    proportional = Counter(c.group for c in temperature_sample(groups, 100, 1.0, random.Random(1)))
    assert 35 <= uniform["big"] <= 65 and proportional["big"] >= 80


def test_sites_are_weighted_by_their_size_not_by_capped_candidates():
    from lima_recipes.curate.candidates import Candidate

    # both sites hit the candidate cap (50 each), but one is 64x larger: weights 4:1 at tau = 3
    groups = {s: [Candidate("s", ("q", "a"), 0, s, "")] * 50 for s in ("large", "small")}
    picks = temperature_sample(groups, 40, 3.0, random.Random(0), sizes={"large": 64_000, "small": 1_000})
    assert 0.68 <= Counter(c.group for c in picks)["large"] / 40 <= 0.92  # 0.8 expected


def test_wikihow_memory_is_bounded_per_category(tmp_path):
    dropped = Counter()
    groups = wikihow_groups(write_wikihow(tmp_path / "wh.jsonl"), src(min_response_chars=200, candidates_per_group=4),
                            random.Random(0), BadRecordBudget(5), dropped)
    assert len(groups["Cars"]) == 4 and dropped["beyond the category's sample"] == 8


@pytest.mark.parametrize("compress", [False, True])
def test_reddit_top_post_and_top_comment(tmp_path, compress):
    budget, dropped = BadRecordBudget(5), Counter()
    groups = reddit_groups(write_reddit(tmp_path / "rd", compress), src(min_response_chars=300), random.Random(0), budget, dropped)
    candidates = groups["WritingPrompts"]
    assert len(candidates) == 6 and [c.priority for c in candidates] == [1000, 999, 998, 997, 996, 995]
    first = candidates[0]
    assert first.turns[0] == "A tolvor wakes up in city 0"  # the [WP] tag removed
    from curate_fixtures import prose

    assert first.turns[1] == prose(800, 900)  # the top comment, not the deleted, bot or nested one
    assert dropped["comment deleted or by a bot"] == 2 and dropped["comment score below 10"] == 1
    assert dropped["repeated submission id"] == 1  # RS_/RC_ monthly file names are recognised too
    assert dropped["submission removed, empty or NSFW"] == 1
    assert budget.count == 2  # one broken line in each file


def test_natural_instructions_one_example_per_task(tmp_path):
    budget, dropped = BadRecordBudget(5), Counter()
    out = natural_instructions_groups(write_natural_instructions(tmp_path / "ni"), src(target=5), random.Random(0), budget, dropped)
    candidates = out["natural_instructions"]
    assert len(candidates) == 8  # up to twice the target, one per task
    assert len({c.origin for c in candidates}) == len(candidates)
    assert all(c.turns[0].startswith("In this task you rename") and "\n\n" in c.turns[0] for c in candidates)
    assert budget.count + dropped["task without definition or instances"] <= 2


def test_full_lima1k_mixture_on_all_fixtures(tmp_path):
    from curate_fixtures import write_handwritten, write_stackexchange_dump

    from lima_recipes.config import compose
    from lima_recipes.curate.pipeline import curate

    dump = write_stackexchange_dump(tmp_path / "se")
    cfg = compose([
        f"curate.output={tmp_path}/out/train.jsonl",
        f"curate.sources.stackexchange_stem.path={dump}", f"curate.sources.stackexchange_other.path={dump}",
        f"curate.sources.wikihow.path={write_wikihow(tmp_path / 'wh.jsonl')}",
        f"curate.sources.writingprompts.path={write_reddit(tmp_path / 'rd', compress=True)}",
        f"curate.sources.natural_instructions.path={write_natural_instructions(tmp_path / 'ni')}",
        f"curate.sources.handwritten.path={write_handwritten(tmp_path / 'hand.jsonl')}",
        "curate.sources.wikihow.min_response_chars=200",
    ], config_name="curate").curate
    card = curate(cfg)
    delivered = {name: s["delivered"] for name, s in card["sources"].items()}
    assert delivered == {"stackexchange_stem": 33, "stackexchange_other": 10, "wikihow": 16, "writingprompts": 6,
                         "natural_instructions": 8, "handwritten": 6}
    for s in card["sources"].values():  # targets exceed supply: every candidate is delivered or refused
        refused = sum(v for k, v in s["dropped"].items() if "duplicate" in k or "overlaps" in k)
        assert s["delivered"] + refused == s["candidates"]
    assert card["examples"] == sum(delivered.values())
    assert not any(s["skipped"] for s in card["sources"].values())


def test_unknown_connector_kind_is_a_config_error(tmp_path):
    from lima_recipes.config import compose
    from lima_recipes.curate.pipeline import curate
    from lima_recipes.errors import ConfigError

    cfg = compose([f"curate.output={tmp_path}/o.jsonl", "curate.sources.wikihow.kind=wikihoww"], config_name="curate").curate
    with pytest.raises(ConfigError, match=r"curate.sources.wikihow.kind=wikihoww is not one of stackexchange, wikihow"):
        curate(cfg)


def test_stackexchange_site_sizes_skip_meta_and_name_dot_net_sites(tmp_path):
    from curate_fixtures import good_question, write_site

    from lima_recipes.config import compose
    from lima_recipes.curate.pipeline import SourceReport, _stackexchange_groups

    root = tmp_path / "se"
    write_site(root / "mathoverflow.net", [good_question(i, 50 - i) for i in range(6)])
    write_site(root / "math.meta.stackexchange.com", [good_question(100 + i, 50) for i in range(2)])
    write_site(root / "cooking.stackexchange.com", [good_question(200 + i, 50) for i in range(2)])
    cfg = compose([f"curate.output={tmp_path}/o.jsonl", f"curate.sources.stackexchange_stem.path={root}"], config_name="curate").curate
    report = SourceReport("stackexchange", str(root), 10)
    groups, sizes = _stackexchange_groups("stackexchange_stem", cfg.sources.stackexchange_stem, cfg,
                                          random.Random(0), BadRecordBudget(5), report)
    assert sizes == {"mathoverflow": 6} and set(groups) == {"mathoverflow"}  # STEM, meta left out


def test_short_eval_prompts_and_any_eval_format_decontaminate(tmp_path):
    import json

    from lima_recipes.curate.decontaminate import EvalOverlap
    from lima_recipes.errors import DataFormatError

    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"prompt": "How to iron a dress shirt properly?"}) + "\n"
                     + json.dumps({"messages": [{"role": "user", "content": "Explain the tolvor sabo renki dalpo quifen method step by step please"},
                                                {"role": "assistant", "content": "ok"}]}) + "\n")
    overlap = EvalOverlap([str(evals)], 8)
    assert overlap.overlaps("How to Iron a Dress Shirt Properly?", "anything")      # short: whole-prompt match
    assert overlap.overlaps("Other?", "so explain the tolvor sabo renki dalpo quifen method step by step")  # messages file read
    assert not overlap.overlaps("How to iron trousers?", "press them flat")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"id": 1}) + "\n")
    with pytest.raises(DataFormatError, match="no prompts found"):
        EvalOverlap([str(empty)], 8)


def test_short_answers_to_different_questions_are_not_near_duplicates():
    from lima_recipes.curate.dedup import Deduplicator

    dedup = Deduplicator()
    assert dedup.duplicate("Is this review positive? The food was cold.", "Negative") is None
    assert dedup.duplicate("Classify the sentiment: a wonderful film.", "Positive") is None
    assert dedup.duplicate("Is 7 prime?", "Yes") is None and dedup.duplicate("Is water wet at room temperature?", "Yes") is None


def test_bad_inputs_and_settings_are_one_config_error(tmp_path):
    from lima_recipes.config import compose
    from lima_recipes.curate.pipeline import curate
    from lima_recipes.errors import ConfigError

    afile = tmp_path / "a.jsonl"
    afile.write_text("{}\n")
    cfg = compose([f"curate.output={tmp_path}/o.jsonl", f"curate.sources.writingprompts.path={afile}",
                   f"curate.sources.wikihow.path={tmp_path}", "curate.sources.stackexchange_stem.temperature=0",
                   "curate.sources.stackexchange_other.domain=STEM"], config_name="curate").curate
    with pytest.raises(ConfigError) as err:
        curate(cfg)
    text = str(err.value)
    assert "writingprompts.path" in text and "expected a folder of NDJSON files, got a file" in text
    assert "wikihow.path" in text and "expected a JSONL file, got a folder" in text
    assert "temperature must be > 0" in text and "domain=STEM must be stem, other or null" in text


def test_handwritten_pass_through_keeps_system_messages_and_sources_are_independent(tmp_path):
    import json

    from curate_fixtures import write_stackexchange_dump

    from lima_recipes.config import compose
    from lima_recipes.curate.pipeline import curate

    hand = tmp_path / "hand.jsonl"
    hand.write_text(json.dumps({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                                             {"role": "assistant", "content": "Hello."}]}) + "\n")
    dump = write_stackexchange_dump(tmp_path / "se")
    base = [f"curate.output={tmp_path}/out/train.jsonl", f"curate.sources.handwritten.path={hand}",
            f"curate.sources.stackexchange_stem.path={dump}", "curate.sources.stackexchange_stem.target=10"]
    curate(compose(base, config_name="curate").curate)
    rows = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                         {"role": "assistant", "content": "Hello."}], "source": "handwritten"} in rows
    stem = sorted(json.dumps(r) for r in rows if r["source"] == "stackexchange_stem")
    curate(compose(base + [f"curate.sources.wikihow.path={write_wikihow(tmp_path / 'wh.jsonl')}",
                           "curate.sources.wikihow.min_response_chars=200"], config_name="curate").curate)
    rows = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert sorted(json.dumps(r) for r in rows if r["source"] == "stackexchange_stem") == stem
