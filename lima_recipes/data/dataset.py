"""Tokenized examples of one split, cached on disk under a key of everything that shapes them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lima_recipes.data.records import LoadReport
from lima_recipes.data.sources import RecordSource, load_conversations
from lima_recipes.data.templates import ChatTemplate
from lima_recipes.data.tokenize import tokenize_conversation
from lima_recipes.errors import DataFormatError

CACHE_VERSION = 2  # 2: max_examples draws a seeded subset instead of the first N
"""Bump when tokenization logic changes, so caches written by older code are not reused."""


@dataclass
class TokenizedSet:
    """Token ids and labels of every kept example, plus what loading and cutting did."""

    input_ids: list[np.ndarray]
    labels: list[np.ndarray]
    sources: list[str]
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.input_ids], dtype=np.int64)

    @property
    def trained_tokens(self) -> np.ndarray:
        # position 0 is never predicted (the loss shifts labels left), so it is never counted
        return np.array([(y[1:] != -100).sum() for y in self.labels], dtype=np.int64)


def tokenizer_fingerprint(tokenizer) -> str:
    """Changes whenever the vocabulary, merges, special tokens or chat template change."""
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode())
    digest.update(str(tokenizer.chat_template).encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def cache_key(source: RecordSource, tokenizer, template: ChatTemplate, data_cfg, is_train: bool) -> str:
    parts = {
        "version": CACHE_VERSION,
        "data": source.fingerprint(),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "template": [template.name, template.jinja(), template.end_of_turn(tokenizer), template.system_prompt],
        "format": data_cfg.format,
        "on_invalid": data_cfg.on_invalid,
        "max_length": data_cfg.max_length,
        "max_user_turns": data_cfg.max_user_turns,
        "max_examples": data_cfg.max_examples if is_train else None,
        "sample_seed": data_cfg.sample_seed if is_train and data_cfg.max_examples is not None else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def tokenize_source(source: RecordSource, tokenizer, template: ChatTemplate, data_cfg, is_train: bool = True) -> TokenizedSet:
    """Load, convert and tokenize; drops (and counts) examples the cut leaves with nothing to train."""
    report = LoadReport()
    conversations = load_conversations(source, data_cfg, report, is_train=is_train)
    input_ids, labels, sources = [], [], []
    truncated, no_trained = 0, 0
    rejected = Counter()
    for conv in conversations:
        try:
            example = tokenize_conversation(conv, tokenizer, template, data_cfg.max_length)
        except DataFormatError as err:
            if data_cfg.on_invalid == "error":
                raise
            rejected[str(err).split(": ", 1)[-1].split(" '")[0]] += 1
            continue
        if example.num_trained == 0:
            no_trained += 1
            continue
        truncated += example.truncated
        input_ids.append(np.asarray(example.input_ids, dtype=np.int32))
        labels.append(np.asarray(example.labels, dtype=np.int32))
        sources.append(conv.source)
    skipped = Counter(report.skipped) + rejected
    if no_trained:
        skipped[f"no assistant token within data.max_length={data_cfg.max_length}"] += no_trained
    stats = {
        "source": source.description,
        "records_read": report.read,
        "examples": len(input_ids),
        "truncated": truncated,
        "skipped": dict(skipped),
        "per_source": dict(Counter(sources)),
    }
    return TokenizedSet(input_ids, labels, sources, stats)


def load_or_tokenize(
    source: RecordSource, tokenizer, template: ChatTemplate, data_cfg, is_train: bool = True
) -> tuple[TokenizedSet, bool]:
    """The tokenized split from the cache when its key matches, else tokenized and cached.

    Returns (set, cache_hit). Written atomically (temp dir + rename), so concurrent DDP ranks
    and interrupted runs never leave a half-written cache behind.
    """
    import datasets

    key = cache_key(source, tokenizer, template, data_cfg, is_train)
    path = Path(data_cfg.cache_dir) / key
    if (path / "stats.json").is_file():
        table = datasets.load_from_disk(str(path / "table")).with_format("numpy")
        stats = json.loads((path / "stats.json").read_text())
        columns = table[:]
        tokenized = TokenizedSet(
            [np.asarray(x, dtype=np.int32) for x in columns["input_ids"]],
            [np.asarray(x, dtype=np.int32) for x in columns["labels"]],
            list(columns["source"]),
            stats,
        )
        return tokenized, True

    tokenized = tokenize_source(source, tokenizer, template, data_cfg, is_train)
    datasets.disable_progress_bars()  # a cache write takes milliseconds; its bar is noise
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=path.parent))
    try:
        table = datasets.Dataset.from_dict(
            {
                "input_ids": [x.tolist() for x in tokenized.input_ids],
                "labels": [x.tolist() for x in tokenized.labels],
                "source": tokenized.sources,
            },
            features=datasets.Features(
                {
                    "input_ids": datasets.Sequence(datasets.Value("int32")),
                    "labels": datasets.Sequence(datasets.Value("int32")),
                    "source": datasets.Value("string"),
                }
            ),
        )
        table.save_to_disk(str(tmp / "table"))
        (tmp / "stats.json").write_text(json.dumps(tokenized.stats, indent=2))
        try:
            os.rename(tmp, path)
        except OSError:  # another process finished first: its copy is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenized, False
