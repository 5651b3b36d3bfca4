"""Drop training examples that overlap any dev or test prompt, so evaluation never scores a model
on text it was trained on. Long prompts: any shared word n-gram. Prompts shorter than n words
(a wikiHow-style "How to iron a shirt?") would have no n-grams, so they are matched whole,
after normalisation, against the training prompt."""

from __future__ import annotations

from lima_recipes.curate.dedup import words
from lima_recipes.data.records import USER, convert_records, read_jsonl
from lima_recipes.errors import DataFormatError


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def eval_prompts(path: str) -> list[str]:
    """User turns of an eval file in any supported shape: `prompt`-only records (test sets) or
    any training format (conversations, messages, prompt/response, instruction)."""
    prompts, records = [], []
    for lineno, record in read_jsonl(path):
        if isinstance(record, dict) and isinstance(record.get("prompt"), str) and "response" not in record:
            prompts.append(record["prompt"])
        else:
            records.append((f"{path}:{lineno}", record))
    for conv in convert_records(records, on_invalid="skip"):
        prompts.extend(m.content for m in conv.messages if m.role == USER)
    if not prompts:
        raise DataFormatError(f"{path}: no prompts found (curate.decontamination.eval_paths needs prompt or conversation records)")
    return prompts


class EvalOverlap:
    def __init__(self, paths: list[str], n: int):
        self.n = n
        self.grams: set[tuple[str, ...]] = set()
        self.short: set[tuple[str, ...]] = set()
        for path in paths:
            for prompt in eval_prompts(path):
                tokens = tuple(words(prompt))
                if len(tokens) >= n:
                    self.grams |= ngrams(prompt, n)
                elif tokens:
                    self.short.add(tokens)

    def overlaps(self, prompt: str, text: str) -> bool:
        if self.short and tuple(words(prompt)) in self.short:
            return True
        return bool(self.grams) and not self.grams.isdisjoint(ngrams(text, self.n))
