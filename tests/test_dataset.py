"""Tokenized data: no example without trained tokens, counts of cuts, and a cache keyed on content,
tokenizer and template."""

from __future__ import annotations

import json

from lima_recipes.data.dataset import cache_key, load_or_tokenize
from lima_recipes.data.sources import RecordSource
from lima_recipes.data.templates import ChatMLTemplate, LimaTemplate


def data_file(tmp_path, records):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return RecordSource("test", path=str(path))


RECORDS = [
    {"conversations": ["Short question?", "Short answer."]},
    {"conversations": ["A very long prompt " * 40, "Answer after the cut."]},
    {"conversations": ["Tell me more.", "More words here. " * 30]},
]


def test_examples_without_trained_tokens_are_dropped_and_counted(tmp_path, compose_cfg, tiny_tokenizer, lima_template):
    cfg = compose_cfg("data.max_length=64")
    lima_template.install(tiny_tokenizer)
    data, hit = load_or_tokenize(data_file(tmp_path, RECORDS), tiny_tokenizer, lima_template, cfg.data)
    assert not hit and len(data) == 2
    assert all((y[1:] != -100).sum() > 0 for y in data.labels)
    assert data.stats["truncated"] == 1
    assert list(data.stats["skipped"].values()) == [1]


def test_second_load_hits_the_cache_with_identical_content(tmp_path, compose_cfg, tiny_tokenizer, lima_template):
    cfg = compose_cfg()
    lima_template.install(tiny_tokenizer)
    source = data_file(tmp_path, RECORDS)
    first, hit1 = load_or_tokenize(source, tiny_tokenizer, lima_template, cfg.data)
    second, hit2 = load_or_tokenize(source, tiny_tokenizer, lima_template, cfg.data)
    assert (hit1, hit2) == (False, True)
    assert all((a == b).all() for a, b in zip(first.input_ids, second.input_ids))
    assert all((a == b).all() for a, b in zip(first.labels, second.labels))


def test_cache_key_changes_with_data_tokenizer_and_template(tmp_path, compose_cfg, tiny_tokenizer):
    from copy import deepcopy

    cfg = compose_cfg()
    lima = LimaTemplate(name="lima", eot_token="<|eot|>")
    chatml = ChatMLTemplate(name="chatml", eot_token="<|im_end|>", extra_special_tokens=["<|im_start|>"])
    tok_a = deepcopy(tiny_tokenizer)
    lima.install(tok_a)
    source = data_file(tmp_path, RECORDS)
    key = cache_key(source, tok_a, lima, cfg.data, True)
    assert key == cache_key(source, tok_a, lima, cfg.data, True)
    tok_b = deepcopy(tiny_tokenizer)
    chatml.install(tok_b)
    assert cache_key(source, tok_b, chatml, cfg.data, True) != key          # template
    tok_c = deepcopy(tok_a)
    tok_c.add_tokens(["brand-new-token"])
    assert cache_key(source, tok_c, lima, cfg.data, True) != key            # tokenizer
    changed = data_file(tmp_path, RECORDS[:2])
    assert cache_key(changed, tok_a, lima, cfg.data, True) != key           # data content
