"""Every supported format becomes the same canonical conversation; bad lines name path:line."""

from __future__ import annotations

import json

import pytest

from lima_recipes.data.records import LoadReport, load_jsonl_conversations
from lima_recipes.errors import DataFormatError

SAME = [
    {"conversations": ["What is 2+2?", "Four."], "source": "handwritten"},
    {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "Four."}], "source": "handwritten"},
    {"prompt": "What is 2+2?", "response": "Four.", "source": "handwritten"},
]


def write(tmp_path, lines, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_all_formats_give_one_canonical_form(tmp_path):
    convs = load_jsonl_conversations(write(tmp_path, SAME))
    assert len({c.messages for c in convs}) == 1
    assert [m.role for m in convs[0].messages] == ["user", "assistant"]
    assert convs[0].source == "handwritten" and convs[0].origin.endswith("d.jsonl:1")


def test_alpaca_input_is_appended_to_the_instruction(tmp_path):
    conv = load_jsonl_conversations(write(tmp_path, [{"instruction": "Sum these.", "input": "2 and 2", "output": "4"}]))[0]
    assert conv.messages[0].content == "Sum these.\n\n2 and 2"


def test_multi_turn_lima_record_alternates_roles(tmp_path):
    conv = load_jsonl_conversations(write(tmp_path, [{"conversations": ["a", "b", "c", "d"]}]))[0]
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"] and conv.user_turns == 2


def test_malformed_json_names_path_and_line(tmp_path):
    path = write(tmp_path, [SAME[0], "{not json", SAME[1]])
    with pytest.raises(DataFormatError, match=rf"{path}:2: invalid JSON"):
        load_jsonl_conversations(path)


@pytest.mark.parametrize("record,reason", [
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "must alternate"),
    ({"conversations": ["question", "   "]}, "empty assistant turn"),
    ({"conversations": ["question"]}, "ends with a user turn"),
    ({"text": "no known fields"}, "no 'conversations'"),
    ({"prompt": "p", "response": 3}, "must be a string"),
])
def test_invalid_conversations_fail_with_path_line_and_reason(tmp_path, record, reason):
    path = write(tmp_path, [SAME[0], record])
    with pytest.raises(DataFormatError, match=rf"{path}:2: .*{reason}"):
        load_jsonl_conversations(path)


def test_skip_mode_drops_and_counts_invalid_records(tmp_path):
    path = write(tmp_path, [SAME[0], {"conversations": ["q", ""]}, {"conversations": ["q"]}, SAME[2]])
    report = LoadReport()
    convs = load_jsonl_conversations(path, on_invalid="skip", report=report)
    assert len(convs) == 2 and report.read == 4 and sum(report.skipped.values()) == 2


def test_max_user_turns_keeps_single_turn_examples(tmp_path):
    path = write(tmp_path, [SAME[0], {"conversations": ["a", "b", "c", "d"]}])
    report = LoadReport()
    assert len(load_jsonl_conversations(path, max_user_turns=1, report=report)) == 1
    assert report.skipped == {"more than 1 user turn(s)": 1}


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(DataFormatError, match=r"no such file \(check data.path\)"):
        load_jsonl_conversations(tmp_path / "nope.jsonl")


def test_shipped_sample_data_is_valid():
    from lima_recipes.config.resolvers import asset_path

    train = load_jsonl_conversations(asset_path("sample/train.jsonl"))
    dev = load_jsonl_conversations(asset_path("sample/dev.jsonl"))
    assert len(train) >= 30 and len(dev) >= 5
    assert any(c.user_turns > 1 for c in train) and {c.source for c in train} >= {"stackexchange", "wikihow", "safety"}


def test_non_utf8_line_names_path_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(SAME[0]).encode() + b"\n" + '{"prompt": "caf\xe9", "response": "x"}'.encode("latin-1") + b"\n")
    with pytest.raises(DataFormatError, match=rf"{path}:2: not UTF-8 text"):
        load_jsonl_conversations(path)


def test_max_examples_draws_a_seeded_subset_nested_across_sizes(compose_cfg):
    from lima_recipes.data.sources import load_conversations, train_source
    from lima_recipes.errors import ConfigError

    def prompts(*overrides):
        cfg = compose_cfg(*overrides)
        return [c.messages[0].content for c in load_conversations(train_source(cfg.data), cfg.data)]

    everything = prompts()
    small, large = prompts("data.max_examples=8", "run.seed=5"), prompts("data.max_examples=16", "run.seed=5")
    assert len(small) == 8 and len(large) == 16
    assert set(small) < set(large)  # one seed: the smaller subset lies inside the larger one
    assert small == [p for p in everything if p in set(small)]  # file order kept
    assert small != everything[:8]  # a random subset, not the head of the file
    assert prompts("data.max_examples=8", "run.seed=5") == small  # deterministic
    assert prompts("data.max_examples=8", "run.seed=6") != small  # the seed draws it
    assert prompts("data.max_examples=8", "run.seed=6", "data.sample_seed=5") == small
    with pytest.raises(ConfigError, match=r"data.max_examples=41, but data.path=.*holds 40 usable conversations"):
        prompts("data.max_examples=41")
