"""Reading generations files back (what `make generate` wrote, or any JSONL with id, prompt and
response) and lining up two of them prompt by prompt."""

from __future__ import annotations

from pathlib import Path

from lima_recipes.data.records import read_jsonl
from lima_recipes.errors import ConfigError, DataFormatError


def load_generations(path: str | Path, key: str) -> dict[str, list[dict]]:
    """Responses grouped by prompt id (several samples per prompt stay in file order)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}={path}: no such file (a generations JSONL written by `make generate`)")
    by_id: dict[str, list[dict]] = {}
    for lineno, obj in read_jsonl(path):
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}:{lineno}: a generation must be a JSON object")
        problems = [name for name, ok in (
            ("id", isinstance(obj.get("id"), (str, int)) and str(obj.get("id")) != ""),
            ("prompt", isinstance(obj.get("prompt"), str) and obj["prompt"].strip() != ""),
            ("response", isinstance(obj.get("response"), str)),  # an empty response is a (bad) answer
        ) if not ok]
        if problems:
            raise DataFormatError(f"{path}:{lineno}: missing or invalid field(s) {', '.join(problems)}")
        by_id.setdefault(str(obj["id"]), []).append(obj)
    if not by_id:
        raise DataFormatError(f"{path}: no generations in the file")
    return by_id


def paired_ids(ours: dict[str, list[dict]], baseline: dict[str, list[dict]], intersect: bool,
               ours_path: str, baseline_path: str) -> list[str]:
    """Ids both files answer, in ours' order; a mismatch stops unless `intersect` allows it."""
    only_ours = [i for i in ours if i not in baseline]
    only_baseline = [i for i in baseline if i not in ours]
    if (only_ours or only_baseline) and not intersect:
        show = lambda ids: ", ".join(ids[:8]) + (f" (+{len(ids) - 8} more)" if len(ids) > 8 else "")  # noqa: E731
        parts = []
        if only_ours:
            parts.append(f"{len(only_ours)} id(s) only in ours={ours_path}: {show(only_ours)}")
        if only_baseline:
            parts.append(f"{len(only_baseline)} id(s) only in baseline={baseline_path}: {show(only_baseline)}")
        raise DataFormatError("prompt sets differ: " + "; ".join(parts) + "; set eval.intersect=true to compare the shared ids only")
    ids = [i for i in ours if i in baseline]
    differing = [i for i in ids if ours[i][0]["prompt"] != baseline[i][0]["prompt"]]
    if differing:
        raise DataFormatError(f"ids {', '.join(differing[:8])} carry different prompt texts in ours={ours_path} and "
                              f"baseline={baseline_path}: were both generated from the same prompt set?")
    return ids
