"""Super-NaturalInstructions task files -> one example from each of N sampled tasks (LIMA took 50).

Each task is a JSON file with `Definition` (a list of strings), `Positive Examples` and
`Instances` ({input, output: [...]}). The prompt is the definition followed by the instance
input; the response is the instance's first output. Files are read one at a time, so memory is
bounded by the largest task, not by how many there are.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from lima_recipes.curate.budget import BadRecordBudget
from lima_recipes.curate.candidates import Candidate
from lima_recipes.curate.progress import track_items
from lima_recipes.errors import DataFormatError


def task_example(task: dict, rng: random.Random) -> tuple[str, str] | None:
    definition = task.get("Definition")
    definition = " ".join(definition) if isinstance(definition, list) else str(definition or "")
    instances = [i for i in task.get("Instances", []) if isinstance(i, dict) and i.get("input") and i.get("output")]
    if not definition.strip() or not instances:
        return None
    instance = rng.choice(instances)
    output = instance["output"][0] if isinstance(instance["output"], list) else instance["output"]
    return f"{definition.strip()}\n\n{str(instance['input']).strip()}", str(output).strip()


def natural_instructions_groups(folder: str | Path, src, rng: random.Random, budget: BadRecordBudget,
                                dropped: Counter) -> dict[str, list[Candidate]]:
    folder = Path(folder)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else [folder]
    if not files:
        hint = " (point at the repository's tasks/ folder)" if (folder / "tasks").is_dir() else ""
        raise DataFormatError(f"{folder}: no task .json files{hint}")
    # Sample the tasks first (seeded), then read only as many files as the target needs, with
    # room for examples that deduplication or decontamination will refuse.
    order = rng.sample(files, len(files))
    out: list[Candidate] = []
    for path in track_items(order, "natural instructions tasks"):
        if len(out) >= 2 * src.target:
            break
        try:
            task = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            where = f"{path}:{err.lineno}" if isinstance(err, json.JSONDecodeError) else str(path)
            budget.bad(where, f"malformed task file ({err})")
            continue
        example = task_example(task, rng) if isinstance(task, dict) else None
        if example is None:
            dropped["task without definition or instances"] += 1
            continue
        if src.max_response_chars is not None and len(example[1]) > src.max_response_chars:
            dropped[f"output longer than {src.max_response_chars} characters"] += 1
            continue
        out.append(Candidate("natural_instructions", example, -float(len(out)), "natural_instructions", str(path)))
    return {"natural_instructions": out}
