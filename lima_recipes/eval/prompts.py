"""Prompt sets for generation: a local JSONL (`prompt` records or conversations) or a hub split."""

from __future__ import annotations

from dataclasses import dataclass

from lima_recipes.data.records import read_jsonl
from lima_recipes.errors import ConfigError, DataFormatError


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: tuple[dict, ...]
    """The conversation so far, ending with the user turn to answer."""

    @property
    def text(self) -> str:
        return self.messages[-1]["content"]


def to_prompt(record: dict, index: int, origin: str) -> Prompt:
    if not isinstance(record, dict):
        raise DataFormatError(f"{origin}: a prompt record must be a JSON object")
    pid = str(record.get("id", index))
    if isinstance(record.get("prompt"), str) and record["prompt"].strip():
        return Prompt(pid, ({"role": "user", "content": record["prompt"]},))
    turns = record.get("conversations")
    if isinstance(turns, list) and turns and all(isinstance(t, str) for t in turns):
        # GAIR/lima test records hold the prompt as the first (user) turn; for a longer chain
        # the model answers the last user turn with the earlier exchange as context.
        if len(turns) % 2 == 0:
            turns = turns[:-1]
        roles = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
        return Prompt(pid, tuple({"role": r, "content": t} for r, t in zip(roles, turns)))
    raise DataFormatError(f"{origin}: no non-empty 'prompt' string or 'conversations' list")


def load_prompts(cfg) -> list[Prompt]:
    if cfg.path is not None:
        prompts = [to_prompt(obj, i, f"{cfg.path}:{lineno}") for i, (lineno, obj) in enumerate(read_jsonl(cfg.path))]
    elif cfg.hub_id is not None:
        from lima_recipes.data.sources import load_hub_split

        rows = load_hub_split(cfg.hub_id, cfg.split)
        prompts = [to_prompt(dict(row), i, f"{cfg.hub_id}[{cfg.split}]#{i}") for i, row in enumerate(rows)]
    else:
        raise ConfigError(f"prompts={cfg.name} needs a source: pass prompts.path=<file.jsonl> (or prompts.hub_id=<dataset>)")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise DataFormatError(f"{cfg.path or cfg.hub_id}: prompt ids must be unique (repeated: {', '.join(duplicated)})")
    return prompts[: cfg.max_prompts] if cfg.max_prompts else prompts
