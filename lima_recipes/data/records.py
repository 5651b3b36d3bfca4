"""Read training records in any supported format into one canonical conversation form.

Formats: GAIR/lima (`conversations`: alternating user/assistant strings), OpenAI-style
`messages`, `prompt`/`response` pairs and Alpaca `instruction`/`input`/`output`. Every record
keeps its origin (`path:line`) so any later error can point at it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lima_recipes.errors import DataFormatError

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    source: str = "unknown"
    origin: str = "?"
    """Where the record came from, `path:line` or `hub_id[split]#index`, for error messages."""

    @property
    def user_turns(self) -> int:
        return sum(m.role == USER for m in self.messages)

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


@dataclass
class LoadReport:
    """What loading kept and dropped, for logs, the preview and the run's data card."""

    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)


def detect_format(record: dict[str, Any]) -> str:
    if "conversations" in record:
        return "lima"
    if "messages" in record:
        return "messages"
    if "prompt" in record and ("response" in record or "completion" in record):
        return "prompt_response"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "chosen" in record and "rejected" in record:
        raise ValueError("a preference record (chosen/rejected): train preference pairs with stage=dpo")
    raise ValueError(
        "no 'conversations', 'messages', 'prompt'/'response' or 'instruction'/'output' field "
        f"(keys: {', '.join(sorted(record)) or 'none'})"
    )


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    return value


def parse_messages(raw: Any, field: str) -> list[Message]:
    """A JSON list of {role, content} objects; raises ValueError naming the bad element."""
    if not isinstance(raw, list):
        raise ValueError(f"'{field}' must be a list of {{role, content}} objects")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"{field}[{i}] needs 'role' and 'content'")
        messages.append(Message(str(m["role"]), _text(m["content"], f"{field}[{i}].content")))
    return messages


def to_conversation(record: dict[str, Any], fmt: str, origin: str) -> Conversation:
    """Convert one record; raises ValueError with the reason (the caller adds the origin)."""
    if not isinstance(record, dict):
        raise ValueError(f"record must be a JSON object, got {type(record).__name__}")
    if fmt == "auto":
        fmt = detect_format(record)
    source = str(record.get("source", record.get("category", "unknown")))
    if fmt == "lima":
        turns = record.get("conversations")
        if not isinstance(turns, list):
            raise ValueError("'conversations' must be a list of strings")
        roles = [USER if i % 2 == 0 else ASSISTANT for i in range(len(turns))]
        messages = [Message(r, _text(t, f"conversations[{i}]")) for i, (r, t) in enumerate(zip(roles, turns))]
    elif fmt == "messages":
        messages = parse_messages(record.get("messages"), "messages")
    elif fmt == "prompt_response":
        response = record.get("response", record.get("completion"))
        messages = [
            Message(USER, _text(record.get("prompt"), "'prompt'")),
            Message(ASSISTANT, _text(response, "'response'")),
        ]
    elif fmt == "alpaca":
        instruction = _text(record.get("instruction"), "'instruction'")
        extra = record.get("input") or ""
        prompt = f"{instruction}\n\n{_text(extra, 'input')}" if extra else instruction
        messages = [Message(USER, prompt), Message(ASSISTANT, _text(record.get("output"), "'output'"))]
    else:
        raise ValueError(f"unknown format {fmt!r}")
    conversation = Conversation(tuple(messages), source=source, origin=origin)
    check_conversation(conversation)
    return conversation


def check_conversation(conv: Conversation) -> None:
    """A trainable conversation: optional system first, then user/assistant alternating, ending
    with a non-empty assistant turn."""
    messages = list(conv.messages)
    if messages and messages[0].role == SYSTEM:
        messages = messages[1:]
    if not messages:
        raise ValueError("conversation has no user/assistant turns")
    for i, m in enumerate(messages):
        expected = USER if i % 2 == 0 else ASSISTANT
        if m.role != expected:
            raise ValueError(f"turn {i + 1} is '{m.role}' but '{expected}' was expected (turns must alternate user/assistant)")
        if m.role == ASSISTANT and not m.content.strip():
            raise ValueError(f"turn {i + 1} is an empty assistant turn")
    if messages[-1].role != ASSISTANT:
        raise ValueError("conversation ends with a user turn (nothing to train on)")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line; bad JSON raises with path:line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file (check data.path)")
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(f"{path}:{lineno}: not UTF-8 text (byte {err.start}: {raw[err.start:err.start + 1]!r})") from None
            if not line.strip():
                continue
            try:
                # without the newline, so a truncated line's error column points at its end
                yield lineno, json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as err:
                raise DataFormatError(f"{path}:{lineno}: invalid JSON ({err.msg} at column {err.colno})") from None


def convert_records(
    records: Iterable[tuple[str, dict[str, Any]]],
    fmt: str = "auto",
    on_invalid: str = "error",
    max_user_turns: int | None = None,
    report: LoadReport | None = None,
    convert=None,
) -> list:
    """Turn (origin, record) pairs into conversations, failing or skipping-and-counting bad ones.
    `convert(record, origin)` makes something else with `user_turns` and `source` (a preference pair)."""
    report = report if report is not None else LoadReport()
    convert = convert or (lambda record, origin: to_conversation(record, fmt, origin))
    out: list = []
    for origin, record in records:
        report.read += 1
        try:
            conv = convert(record, origin)
        except ValueError as err:
            if on_invalid == "error":
                raise DataFormatError(f"{origin}: {err}") from None
            report.skipped[str(err).split(" (")[0]] += 1
            continue
        if max_user_turns is not None and conv.user_turns > max_user_turns:
            report.skipped[f"more than {max_user_turns} user turn(s)"] += 1
            continue
        out.append(conv)
        report.sources[conv.source] += 1
    report.kept = len(out)
    return out


def subsample(conversations: list[Conversation], n: int, seed: int, report: LoadReport | None = None) -> list[Conversation]:
    """A uniform random subset of n conversations, kept in file order.

    The subset is the first n of one seeded permutation, so for a fixed seed the 2K subset lies
    inside the 4K one: a quantity ablation adds examples instead of redrawing them.
    """
    import numpy as np

    chosen = sorted(np.random.default_rng(seed).permutation(len(conversations))[:n].tolist())
    out = [conversations[i] for i in chosen]
    if report is not None:
        report.kept = len(out)
        report.sources = Counter(c.source for c in out)
    return out


def load_jsonl_conversations(path: str | Path, **kwargs: Any) -> list[Conversation]:
    pairs = ((f"{path}:{lineno}", obj) for lineno, obj in read_jsonl(path))
    return convert_records(pairs, **kwargs)
