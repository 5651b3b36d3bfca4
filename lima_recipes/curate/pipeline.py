"""The curation run: every source's candidates -> mixture by per-source targets, with duplicates
and eval overlaps refused as they are drawn -> JSONL + data card, written atomically."""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lima_recipes.curate.budget import BadRecordBudget
from lima_recipes.curate.decontaminate import EvalOverlap
from lima_recipes.curate.dedup import Deduplicator
from lima_recipes.curate.handwritten import handwritten_candidates
from lima_recipes.curate.candidates import Candidate, temperature_sample
from lima_recipes.curate.stackexchange import SiteStats, is_meta_site, site_candidates, site_name
from lima_recipes.errors import ConfigError, DataFormatError
from lima_recipes.io import write_jsonl

log = logging.getLogger(__name__)

CONNECTORS = ("stackexchange", "wikihow", "reddit", "natural_instructions", "handwritten")


@dataclass
class SourceReport:
    kind: str
    path: str | None
    requested: int
    delivered: int = 0
    candidates: int = 0
    dropped: Counter = field(default_factory=Counter)
    groups: Counter = field(default_factory=Counter)
    skipped: str | None = None


def _stackexchange_groups(name: str, src, cfg, rng: random.Random, budget: BadRecordBudget,
                          report: SourceReport) -> tuple[dict[str, list[Candidate]], dict[str, int]]:
    root = Path(src.path)
    stem, excluded = set(cfg.stem_sites), set(cfg.exclude_sites)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not is_meta_site(p) and site_name(p) not in excluded)
    if src.domain is not None:
        folders = [f for f in folders if (site_name(f) in stem) == (src.domain == "stem")]
    if not folders:
        raise DataFormatError(f"curate.sources.{name}.path={root}: no site folders for domain={src.domain} (check curate.stem_sites)")
    groups, sizes = {}, {}
    for folder in folders:
        stats = SiteStats()
        groups[site_name(folder)] = site_candidates(folder, src, rng, budget, stats)
        sizes[site_name(folder)] = stats.questions  # LIMA weighs sites by size, not by what survives
        report.dropped.update(stats.dropped)
    return groups, sizes


def candidates_for(name: str, src, cfg, rng: random.Random, budget: BadRecordBudget,
                   report: SourceReport) -> tuple[dict[str, list[Candidate]], dict[str, int] | None]:
    """(candidates by group, real group sizes or None) of one source."""
    try:
        return _candidates_for(name, src, cfg, rng, budget, report)
    except (OSError, ValueError) as err:  # unreadable file, corrupt zstd frame, ...
        if isinstance(err, (ConfigError, DataFormatError)):
            raise
        raise DataFormatError(f"curate.sources.{name}.path={src.path}: cannot be read ({type(err).__name__}: {err})") from None


def _candidates_for(name: str, src, cfg, rng: random.Random, budget: BadRecordBudget, report: SourceReport):
    if src.kind == "stackexchange":
        return _stackexchange_groups(name, src, cfg, rng, budget, report)
    if src.kind == "handwritten":
        return {"handwritten": handwritten_candidates(src.path)}, None
    if src.kind == "wikihow":
        from lima_recipes.curate.wikihow import wikihow_groups

        return wikihow_groups(src.path, src, rng, budget, report.dropped), None
    if src.kind == "reddit":
        from lima_recipes.curate.reddit import reddit_groups

        return reddit_groups(src.path, src, rng, budget, report.dropped), None
    if src.kind == "natural_instructions":
        from lima_recipes.curate.natural_instructions import natural_instructions_groups

        return natural_instructions_groups(src.path, src, rng, budget, report.dropped), None
    raise ConfigError(f"curate.sources.{name}.kind={src.kind} is not one of {', '.join(CONNECTORS)}")


FOLDER_KINDS = {"stackexchange": "a folder with one sub-folder per site", "reddit": "a folder of NDJSON files",
                "natural_instructions": "a folder of task JSON files"}


def check_config(cfg) -> list[str]:
    """Every problem with the curate config and its inputs, before anything is read."""
    problems = []
    for n, s in cfg.sources.items():
        key = f"curate.sources.{n}"
        if s.kind not in CONNECTORS:
            problems.append(f"{key}.kind={s.kind} is not one of {', '.join(CONNECTORS)}")
        if s.domain not in (None, "stem", "other"):
            problems.append(f"{key}.domain={s.domain} must be stem, other or null")
        if s.temperature <= 0 or s.candidates_per_group < 1 or s.target < 0:
            problems.append(f"{key}: temperature must be > 0, candidates_per_group >= 1 and target >= 0")
        if not s.filters and s.kind != "stackexchange":
            problems.append(f"{key}.filters=false: only the stackexchange connector has an unfiltered mode")
        if s.max_response_chars is not None and s.max_response_chars < s.min_response_chars:
            problems.append(f"{key}.max_response_chars={s.max_response_chars} is below min_response_chars={s.min_response_chars}")
        if s.path is None:
            continue
        path = Path(s.path)
        if not path.exists():
            problems.append(f"{key}.path={s.path}: no such file or folder")
        elif s.kind in FOLDER_KINDS and not path.is_dir():
            problems.append(f"{key}.path={s.path}: expected {FOLDER_KINDS[s.kind]}, got a file")
        elif s.kind in ("wikihow", "handwritten") and not path.is_file():
            problems.append(f"{key}.path={s.path}: expected a JSONL file, got a folder")
    if Path(cfg.output).is_dir():
        problems.append(f"curate.output={cfg.output} is a folder; name the JSONL file to write")
    return problems


def curate(cfg) -> dict:
    """Run curation from a `curate` config node; returns the data card (also written to disk)."""
    problems = check_config(cfg)
    problems += [f"curate.decontamination.eval_paths: {p}: no such file" for p in cfg.decontamination.eval_paths if not Path(p).is_file()]
    if not problems and all(s.path is None for s in cfg.sources.values()):
        names = ", ".join(cfg.sources)
        problems.append(f"no source has an input: give curate.sources.<name>.path for at least one of {names}")
    if problems:
        raise ConfigError(problems)
    budget = BadRecordBudget(cfg.error_budget)
    dedup = Deduplicator(cfg.dedup.near_threshold, cfg.dedup.num_perm)
    contamination = EvalOverlap(list(cfg.decontamination.eval_paths), cfg.decontamination.ngram)
    reports: dict[str, SourceReport] = {}
    chosen: list[tuple[str, Candidate]] = []

    for name, src in cfg.sources.items():
        # One generator per source, seeded by its name: adding or changing one source's input
        # never changes what another source contributes.
        rng = random.Random(f"{cfg.seed}:{name}")
        report = reports[name] = SourceReport(src.kind, src.path, src.target)
        if src.path is None:
            report.skipped = f"no input given (curate.sources.{name}.path)"
            log.warning("source %s skipped: %s", name, report.skipped)
            continue
        groups, sizes = candidates_for(name, src, cfg, rng, budget, report)
        report.candidates = sum(len(c) for c in groups.values())

        def accept(candidate: Candidate, report=report, src=src) -> bool:
            prompt, response = "\n".join(candidate.turns[0::2]), "\n".join(candidate.turns[1::2])
            if contamination.overlaps(prompt, candidate.text):
                report.dropped["overlaps a dev/test prompt"] += 1
                return False
            if src.kind == "handwritten":
                # passed through as written; recorded so no other source repeats them
                dedup.duplicate(prompt, response)
                return True
            reason = dedup.duplicate(prompt, response)
            if reason:
                report.dropped[reason] += 1
                return False
            return True

        picks = temperature_sample(groups, src.target, src.temperature, rng, accept, sizes)
        report.delivered = len(picks)
        report.groups.update(c.group for c in picks)
        if report.delivered < src.target:
            log.warning("source %s delivered %d of %d requested", name, report.delivered, src.target)
        chosen.extend((name, c) for c in picks)

    rows = [output_row(name, c) for name, c in chosen]
    random.Random(f"{cfg.seed}:order").shuffle(rows)
    output = Path(cfg.output)
    card = data_card(cfg, reports, dedup, budget, rows)
    from lima_recipes.curate.card import write_card

    # The card first, the dataset last: training reads the dataset, so it appears only once
    # everything that documents it is in place.
    write_card(card, output)
    write_jsonl(output, rows)
    return card


def output_row(name: str, candidate: Candidate) -> dict:
    """GAIR/lima records; a hand-written example with a system message keeps it (messages format)."""
    if candidate.system:
        roles = ["user" if i % 2 == 0 else "assistant" for i in range(len(candidate.turns))]
        messages = [{"role": "system", "content": candidate.system}]
        messages += [{"role": r, "content": t} for r, t in zip(roles, candidate.turns)]
        return {"messages": messages, "source": name}
    return {"conversations": list(candidate.turns), "source": name}


def data_card(cfg, reports: dict[str, SourceReport], dedup: Deduplicator, budget: BadRecordBudget, rows: list[dict]) -> dict:
    from lima_recipes.curate.card import length_stats

    return {
        "name": cfg.name,
        "output": str(cfg.output),
        "seed": cfg.seed,
        "examples": len(rows),
        "sources": {
            name: {
                "kind": r.kind, "path": r.path, "requested": r.requested, "delivered": r.delivered,
                "candidates": r.candidates, "skipped": r.skipped, "dropped": dict(r.dropped),
                "groups": dict(sorted(r.groups.items())),
            }
            for name, r in reports.items()
        },
        "duplicates_dropped": dict(dedup.dropped),
        "malformed_records": {"count": budget.count, "budget": budget.limit, "examples": budget.examples},
        "lengths": length_stats(rows),
        "examples_per_source": _examples(rows, cfg.card_examples),
    }


def _examples(rows: list[dict], per_source: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        bucket = out.setdefault(row["source"], [])
        turns = row.get("conversations") or [m["content"] for m in row["messages"] if m["role"] != "system"]
        if len(bucket) < per_source:
            bucket.append({"prompt": turns[0][:500], "response": turns[1][:800]})
    return out
