"""Preference pairs for DPO: records -> (context, chosen, rejected) -> two tokenized rows per pair.

Accepted records (JSONL or a hub split), with optional `source`:
- `{"prompt": str, "chosen": str, "rejected": str}`: one user turn and two answers.
- `{"prompt": [messages], "chosen": ..., "rejected": ...}` (TRL's conversational form), where
  the prompt is a conversation ending with a user turn (earlier assistant turns and a first
  system message allowed) and each answer is a string, or a list holding one assistant message.
  `messages` is accepted as another name for `prompt`.

Both answers are rendered after the same context with the SFT template, so each ends with the
end-of-turn token, and only the final answer's tokens are trained (earlier assistant turns of a
multi-turn prompt are context). Cutting follows SFT: a row longer than data.max_length is cut
from the end, and a pair whose chosen or rejected row keeps no answer token is dropped and counted.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lima_recipes.data.records import (ASSISTANT, USER, Conversation, LoadReport, Message, _text, check_conversation,
                                      convert_records, parse_messages)
from lima_recipes.data.templates import ChatTemplate
from lima_recipes.data.tokenize import IGNORE_INDEX, tokenize_conversation
from lima_recipes.errors import DataFormatError


@dataclass(frozen=True)
class PreferencePair:
    context: tuple[Message, ...]
    """The conversation up to and including the last user turn."""
    chosen: str
    rejected: str
    source: str = "unknown"
    origin: str = "?"

    @property
    def user_turns(self) -> int:
        return sum(m.role == USER for m in self.context)

    def conversation(self, answer: str) -> Conversation:
        return Conversation((*self.context, Message(ASSISTANT, answer)), self.source, self.origin)


def is_preference_record(record: Any) -> bool:
    return isinstance(record, dict) and "chosen" in record and "rejected" in record


def _answer(value: Any, what: str) -> str:
    """An answer given as a string, or as [{"role": "assistant", "content": ...}]."""
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != ASSISTANT:
            raise ValueError(f"'{what}' must be a string or a list holding one assistant message")
        value = value[0].get("content")
    text = _text(value, f"'{what}'")
    if not text.strip():
        raise ValueError(f"'{what}' is empty")
    return text


def _context(value: Any) -> tuple[Message, ...]:
    if isinstance(value, str):
        return (Message(USER, value),)
    messages = parse_messages(value, "prompt")
    if not messages or messages[-1].role != USER:
        raise ValueError("the prompt must end with a user turn")
    return tuple(messages)


def to_pair(record: dict[str, Any], origin: str) -> PreferencePair:
    """Convert one record; raises ValueError with the reason (the caller adds the origin)."""
    if not is_preference_record(record):
        keys = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"not a preference record: it needs 'prompt' (or 'messages'), 'chosen' and 'rejected' (keys: {keys or 'none'})")
    if "prompt" not in record and "messages" not in record:
        raise ValueError("no 'prompt' (or 'messages') field")
    pair = PreferencePair(
        _context(record["prompt"] if "prompt" in record else record["messages"]),
        _answer(record["chosen"], "chosen"), _answer(record["rejected"], "rejected"),
        source=str(record.get("source", "unknown")), origin=origin,
    )
    if pair.chosen == pair.rejected:
        raise ValueError("'chosen' and 'rejected' are the same text")
    check_conversation(pair.conversation(pair.chosen))  # roles alternate, system only first
    return pair


def convert_pairs(records, on_invalid: str = "error", max_user_turns: int | None = None,
                  report: LoadReport | None = None) -> list[PreferencePair]:
    """(origin, record) -> pairs, failing with `origin: reason` or skipping and counting."""
    return convert_records(records, on_invalid=on_invalid, max_user_turns=max_user_turns, report=report, convert=to_pair)


@dataclass
class PreferenceSet:
    """Token ids and labels of both answers of every kept pair. `lengths` and `trained_tokens`
    are what the batch planner reads: a pair's two rows are padded to the longer one, and the SFT
    term of the loss (stage.sft_weight) averages over the chosen answers' tokens."""

    chosen_ids: list[np.ndarray]
    chosen_labels: list[np.ndarray]
    rejected_ids: list[np.ndarray]
    rejected_labels: list[np.ndarray]
    sources: list[str]
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.chosen_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([max(len(c), len(r)) for c, r in zip(self.chosen_ids, self.rejected_ids)], dtype=np.int64)

    @property
    def trained_tokens(self) -> np.ndarray:
        return np.array([(y[1:] != IGNORE_INDEX).sum() for y in self.chosen_labels], dtype=np.int64)


def tokenize_pairs(pairs: list[PreferencePair], tokenizer, template: ChatTemplate, max_length: int,
                   on_invalid: str = "error", report: LoadReport | None = None, description: str = "") -> PreferenceSet:
    report = report if report is not None else LoadReport()
    columns: dict[str, list] = {"chosen_ids": [], "chosen_labels": [], "rejected_ids": [], "rejected_labels": [], "sources": []}
    truncated, no_trained = 0, 0
    rejected_records = Counter()
    for pair in pairs:
        try:
            rows = [tokenize_conversation(pair.conversation(answer), tokenizer, template, max_length, last_turn_only=True)
                    for answer in (pair.chosen, pair.rejected)]
        except DataFormatError as err:
            if on_invalid == "error":
                raise
            rejected_records[str(err).split(": ", 1)[-1].split(" '")[0]] += 1
            continue
        if any(row.num_trained == 0 for row in rows):
            no_trained += 1
            continue
        truncated += any(row.truncated for row in rows)
        for name, row in zip(("chosen", "rejected"), rows):
            columns[f"{name}_ids"].append(np.asarray(row.input_ids, dtype=np.int32))
            columns[f"{name}_labels"].append(np.asarray(row.labels, dtype=np.int32))
        columns["sources"].append(pair.source)
    skipped = Counter(report.skipped) + rejected_records
    if no_trained:
        skipped[f"no answer token within data.max_length={max_length}"] += no_trained
    stats = {"source": description, "records_read": report.read, "pairs": len(columns["sources"]),
             "truncated": truncated, "skipped": dict(skipped), "per_source": dict(Counter(columns["sources"]))}
    return PreferenceSet(**columns, stats=stats)


def load_preference_set(source, tokenizer, template: ChatTemplate, data_cfg, is_train: bool = True) -> PreferenceSet:
    """A source's pairs under the data config; data.max_examples draws a seeded subset of pairs."""
    from lima_recipes.data.records import subsample
    from lima_recipes.errors import ConfigError

    report = LoadReport()
    pairs = convert_pairs(source.records(), data_cfg.on_invalid, data_cfg.max_user_turns, report)
    wanted = data_cfg.max_examples if is_train else None
    if wanted is not None:
        if wanted > len(pairs):
            raise ConfigError(f"data.max_examples={wanted}, but {source.description} holds {len(pairs)} usable pairs")
        pairs = subsample(pairs, wanted, data_cfg.sample_seed)
    return tokenize_pairs(pairs, tokenizer, template, data_cfg.max_length, data_cfg.on_invalid, report, source.description)


def _rows(ids: list[np.ndarray], labels: list[np.ndarray] | None, width: int, pad_token_id: int):
    input_ids = torch.full((len(ids), width), pad_token_id, dtype=torch.long)
    out_labels = torch.full((len(ids), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for j, row in enumerate(ids):
        input_ids[j, : len(row)] = torch.from_numpy(row.astype(np.int64))
        attention_mask[j, : len(row)] = 1
        if labels is not None:
            out_labels[j, : len(row)] = torch.from_numpy(labels[j].astype(np.int64))
    return input_ids, out_labels, attention_mask


def collate_pairs(pairs: PreferenceSet, micro, pad_token_id: int, multiple: int = 8, accumulation: int = 1,
                  world_size: int = 1) -> dict[str, torch.Tensor]:
    """One micro-batch of B pairs as 2B rows, [chosen of each pair; rejected of each pair], for a
    single forward pass. A filler micro-batch (see plan_epoch) has every label masked and
    `pair_weight` 0, so it adds nothing to the loss or the metrics."""
    ids = [pairs.chosen_ids[i] for i in micro.indices] + [pairs.rejected_ids[i] for i in micro.indices]
    labels = None if micro.filler else ([pairs.chosen_labels[i] for i in micro.indices] + [pairs.rejected_labels[i] for i in micro.indices])
    width = int(math.ceil(max(len(r) for r in ids) / multiple) * multiple)
    input_ids, out_labels, attention_mask = _rows(ids, labels, width, pad_token_id)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": out_labels,
        "pair_index": torch.tensor(micro.indices, dtype=torch.long),
        "pair_weight": torch.full((len(micro.indices),), 0 if micro.filler else 1, dtype=torch.long),
        "global_pairs": torch.tensor(max(micro.global_examples, 1), dtype=torch.long),
        "global_trained_tokens": torch.tensor(max(micro.global_trained_tokens, 1), dtype=torch.long),
        "loss_scale": torch.tensor(accumulation * world_size, dtype=torch.long),
    }
