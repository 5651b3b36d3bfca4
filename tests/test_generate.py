"""Generation with LIMA decoding: settings reach generate(), batched equals one-by-one, the
end-of-turn cut and flag, prompt sets and their errors, and the automatic metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lima_recipes.errors import DataFormatError, WeightsNotFoundError
from lima_recipes.eval.generate import generate, load_for_generation, resolve_export
from lima_recipes.eval.metrics import automatic_metrics, has_markdown, is_refusal, repetition_rate
from lima_recipes.eval.prompts import Prompt, load_prompts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """A tiny model exported exactly as training exports it (random weights: no training needed)."""
    from lima_recipes.config import compose
    from lima_recipes.data.templates import build_template
    from lima_recipes.model.build import build_model, load_tokenizer
    from lima_recipes.model.export import export_model

    cfg = compose(["logger=csv"])
    tokenizer = load_tokenizer(cfg.model)
    template = build_template(cfg.template)
    template.install(tokenizer)
    model = build_model(cfg.model, tokenizer, seed=0)
    out = tmp_path_factory.mktemp("run") / "export"
    export_model(model, tokenizer, template.end_of_turn(tokenizer), cfg.generation, out)
    return out


def prompts(n: int = 5) -> list[Prompt]:
    texts = ["Hi?", "How do I sort a list in Python quickly?", "Tell me a story about a lighthouse keeper.", "Why?", "List three colours."]
    return [Prompt(f"p{i}", ({"role": "user", "content": texts[i % len(texts)]},)) for i in range(n)]


def settings(**kw):
    from types import SimpleNamespace

    base = dict(do_sample=True, top_p=0.9, temperature=0.7, repetition_penalty=1.2, max_new_tokens=12)
    return SimpleNamespace(**(base | kw))


def test_lima_decoding_reaches_generate(export_dir, monkeypatch):
    model, tokenizer, eos = load_for_generation(export_dir)
    seen = {}
    real = model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    out = generate(prompts(2), model, tokenizer, eos, settings(), num_samples=1, batch_size=2)
    assert (seen["top_p"], seen["temperature"], seen["repetition_penalty"], seen["max_new_tokens"], seen["do_sample"]) == (0.9, 0.7, 1.2, 12, True)
    assert seen["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|eot|>") == eos
    assert out[0].decoding["top_p"] == 0.9 and out[0].seed == 1234


def test_batched_equals_one_by_one(export_dir):
    model, tokenizer, eos = load_for_generation(export_dir)
    greedy = settings(do_sample=False, repetition_penalty=1.0, max_new_tokens=10)
    batched = generate(prompts(5), model, tokenizer, eos, greedy, batch_size=5)
    single = generate(prompts(5), model, tokenizer, eos, greedy, batch_size=1)
    assert [g.response for g in batched] == [g.response for g in single]
    assert [g.id for g in batched] == ["p0", "p1", "p2", "p3", "p4"]  # input order, whatever the batching


def test_samples_per_prompt_and_reproducible_seeds(export_dir):
    model, tokenizer, eos = load_for_generation(export_dir)
    first = generate(prompts(3), model, tokenizer, eos, settings(), num_samples=2, batch_size=2, seed=5)
    again = generate(prompts(3), model, tokenizer, eos, settings(), num_samples=2, batch_size=2, seed=5)
    assert [(g.id, g.sample) for g in first] == [("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1), ("p2", 0), ("p2", 1)]
    assert [g.response for g in first] == [g.response for g in again]


def test_response_is_cut_at_the_end_of_turn_token_and_flagged(export_dir, monkeypatch):
    model, tokenizer, eos = load_for_generation(export_dir)
    word = tokenizer("hello", add_special_tokens=False)["input_ids"]

    def scripted(input_ids, **kwargs):
        rows = [torch.tensor(word + [eos] + [tokenizer.pad_token_id] * (len(word) - 1)), torch.tensor(word * 2)]
        return torch.cat([input_ids, torch.stack(rows[: len(input_ids)])], dim=1)

    monkeypatch.setattr(model, "generate", scripted)
    out = generate(prompts(2)[:1] + [Prompt("q", ({"role": "user", "content": "Hi?"},))], model, tokenizer, eos, settings(), batch_size=2)
    stopped = [g for g in out if g.stopped_at_eot]
    running = [g for g in out if not g.stopped_at_eot]
    assert len(stopped) == 1 and stopped[0].response == "hello" and stopped[0].response_tokens == len(word)
    assert len(running) == 1 and running[0].response_tokens == 2 * len(word)


def test_prompt_sets_and_their_errors(tmp_path):
    from types import SimpleNamespace

    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "prompt": "One?"}\n{"conversations": ["Two?"]}\n{"conversations": ["x", "y", "Three?", "z"]}\n')
    cfg = SimpleNamespace(name="t", path=str(path), hub_id=None, split="test", max_prompts=None)
    loaded = load_prompts(cfg)
    assert [p.id for p in loaded] == ["a", "1", "2"] and loaded[2].text == "Three?" and len(loaded[2].messages) == 3
    path.write_text('{"id": "a", "prompt": "One?"}\n{"id": "b", "text": "no prompt"}\n')
    with pytest.raises(DataFormatError, match=rf"{path}:2: no non-empty 'prompt'"):
        load_prompts(cfg)
    path.write_text('{"id": "a", "prompt": "One?"}\n{"id": "a", "prompt": "Two?"}\n')
    with pytest.raises(DataFormatError, match="prompt ids must be unique"):
        load_prompts(cfg)
    with pytest.raises(WeightsNotFoundError, match="holds a model"):
        resolve_export(tmp_path)


def test_automatic_metrics_against_hand_computed_values():
    assert repetition_rate("a b c d a b c d") == pytest.approx(1 / 5)  # 5 four-grams, the last repeats the first
    assert repetition_rate("one two three") == 0.0
    assert has_markdown("Steps:\n1. Boil water") and has_markdown("## Heading") and has_markdown("```\nx\n```")
    assert not has_markdown("Plain prose - with a dash.")
    assert is_refusal("I'm sorry, but I can't help with that.") and not is_refusal("Sorry to hear that! Here is how.")
    generations = [
        {"response": "1. a\n2. b", "response_tokens": 4, "stopped_at_eot": True},
        {"response": "I cannot help with that request.", "response_tokens": 8, "stopped_at_eot": False},
    ]
    metrics = automatic_metrics(generations)
    assert metrics["response_tokens_mean"] == 6 and metrics["stopped_at_eot"] == 0.5
    assert metrics["markdown_share"] == 0.5 and metrics["refusal_share"] == 0.5


@pytest.mark.slow
def test_make_generate_writes_generations_and_metrics(export_dir):
    proc = subprocess.run([sys.executable, "recipes/generate.py", f"run={export_dir.parent}", "generation.max_new_tokens=8",
                           "prompts.max_prompts=3", f"hydra.run.dir={export_dir.parent}/hydra"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (export_dir.parent / "generations" / "sample.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["id"] == "test-001"
    assert json.loads((export_dir.parent / "generations" / "sample.metrics.json").read_text())["responses"] == 3
