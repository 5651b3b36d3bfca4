"""Where records come from: a local JSONL file or a Hugging Face dataset (GAIR/lima is gated)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima_recipes.data.records import Conversation, LoadReport, convert_records, read_jsonl, subsample
from lima_recipes.errors import ConfigError, WeightsNotFoundError
from lima_recipes.hub import OFFLINE_HINT, hub_reachable, offline_mode


@dataclass(frozen=True)
class RecordSource:
    """One split of training or dev records and a fingerprint of its content."""

    description: str
    path: str | None = None
    hub_id: str | None = None
    split: str = "train"

    def fingerprint(self) -> str:
        if self.path is not None:
            digest = hashlib.sha256()
            with open(self.path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            return "file:" + digest.hexdigest()
        return f"hub:{self.hub_id}:{self.split}:{load_hub_split(self.hub_id, self.split)._fingerprint}"

    def records(self):
        """(origin, record) pairs; a local file reports `path:line`, a hub split `id[split]#i`."""
        if self.path is not None:
            return ((f"{self.path}:{lineno}", obj) for lineno, obj in read_jsonl(self.path))
        rows = load_hub_split(self.hub_id, self.split)
        return ((f"{self.hub_id}[{self.split}]#{i}", row) for i, row in enumerate(rows))


def train_source(data_cfg) -> RecordSource:
    if data_cfg.path is not None:
        return RecordSource(f"data.path={data_cfg.path}", path=str(Path(data_cfg.path)))
    return RecordSource(f"data.hub_id={data_cfg.hub_id}", hub_id=data_cfg.hub_id, split=data_cfg.split)


def dev_source(data_cfg) -> RecordSource | None:
    if data_cfg.dev_path is not None:
        return RecordSource(f"data.dev_path={data_cfg.dev_path}", path=str(Path(data_cfg.dev_path)))
    if data_cfg.dev_split is not None and data_cfg.hub_id is not None and data_cfg.path is None:
        return RecordSource(f"data.dev_split={data_cfg.dev_split}", hub_id=data_cfg.hub_id, split=data_cfg.dev_split)
    return None


def check_available(source: RecordSource) -> None:
    """Fail fast, before any model is built, when the records cannot be read."""
    if source.path is not None:
        path = Path(source.path)
        if not path.is_file():
            made_by = f"; `make curate curate={path.parent.name}` writes it" if path.parent.parent.name == "curate" else ""
            raise WeightsNotFoundError(f"{source.description}: no such file (pass data.path=<existing .jsonl>{made_by})")
        return
    load_hub_split(source.hub_id, source.split)


_HUB_CACHE: dict[tuple[str, str], Any] = {}


def load_hub_split(hub_id: str, split: str):
    key = (hub_id, split)
    if key not in _HUB_CACHE:
        import datasets

        if not offline_mode() and not hub_reachable():
            raise WeightsNotFoundError(
                f"data.hub_id={hub_id} cannot be downloaded: the Hugging Face Hub is unreachable (offline); "
                f"pass data.path=/path/to/{split}.jsonl (a local copy), run where the hub is reachable with "
                f"HF_TOKEN set (gated datasets: accept their terms first), or {OFFLINE_HINT}"
            )

        try:
            _HUB_CACHE[key] = datasets.load_dataset(hub_id, split=split)
        except Exception as err:  # offline, gated, missing: all mean "provide the data"
            reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            raise WeightsNotFoundError(
                f"data.hub_id={hub_id} (split {split}) is not available here ({reason}); for a gated "
                f"dataset accept its terms on the Hugging Face Hub and set HF_TOKEN, or download it and "
                f"pass data.path=/path/to/{split}.jsonl"
            ) from None
    return _HUB_CACHE[key]


def load_conversations(
    source: RecordSource, data_cfg, report: LoadReport | None = None, is_train: bool = True
) -> list[Conversation]:
    """Conversations of a source under the data config (max_examples applies to training only)."""
    report = report if report is not None else LoadReport()
    conversations = convert_records(
        source.records(),
        fmt=data_cfg.format,
        on_invalid=data_cfg.on_invalid,
        max_user_turns=data_cfg.max_user_turns,
        report=report,
    )
    wanted = data_cfg.max_examples if is_train else None
    if wanted is None:
        return conversations
    if wanted > len(conversations):
        raise ConfigError(f"data.max_examples={wanted}, but {source.description} holds {len(conversations)} usable "
                          f"conversations: lower data.max_examples or give a larger data set")
    return subsample(conversations, wanted, data_cfg.sample_seed, report)
