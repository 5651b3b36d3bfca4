"""The curation run: every source's candidates -> mixture by per-source targets, with duplicates
and eval overlaps refused as they are drawn -> JSONL + data card, written atomically."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lima_recipes.curate.budget import BadRecordBudget
from lima_recipes.curate.decontaminate import eval_ngrams, overlaps
from lima_recipes.curate.dedup import Deduplicator
from lima_recipes.curate.handwritten import handwritten_candidates
from lima_recipes.curate.candidates import Candidate, temperature_sample
from lima_recipes.curate.stackexchange import SiteStats, site_candidates, site_name
from lima_recipes.errors import ConfigError, DataFormatError
from lima_recipes.io import write_atomically

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
                          report: SourceReport) -> dict[str, list[Candidate]]:
    root = Path(src.path)
    stem = set(cfg.stem_sites)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if src.domain is not None:
        folders = [f for f in folders if (site_name(f) in stem) == (src.domain == "stem")]
    if not folders:
        raise DataFormatError(f"curate.sources.{name}.path={root}: no site folders for domain={src.domain} (check curate.stem_sites)")
    groups = {}
    for folder in folders:
        stats = SiteStats()
        groups[site_name(folder)] = site_candidates(folder, src, rng, budget, stats)
        report.dropped.update(stats.dropped)
    return groups


def candidates_for(name: str, src, cfg, rng: random.Random, budget: BadRecordBudget, report: SourceReport) -> dict[str, list[Candidate]]:
    if src.kind == "stackexchange":
        return _stackexchange_groups(name, src, cfg, rng, budget, report)
    if src.kind == "handwritten":
        return {"handwritten": handwritten_candidates(src.path)}
    if src.kind == "wikihow":
        from lima_recipes.curate.wikihow import wikihow_groups

        return wikihow_groups(src.path, src, rng, budget, report.dropped)
    if src.kind == "reddit":
        from lima_recipes.curate.reddit import reddit_groups

        return reddit_groups(src.path, src, rng, budget, report.dropped)
    if src.kind == "natural_instructions":
        from lima_recipes.curate.natural_instructions import natural_instructions_groups

        return natural_instructions_groups(src.path, src, rng, budget, report.dropped)
    raise ConfigError(f"curate.sources.{name}.kind={src.kind} is not one of {', '.join(CONNECTORS)}")


def curate(cfg) -> dict:
    """Run curation from a `curate` config node; returns the data card (also written to disk)."""
    problems = [f"curate.sources.{n}.path={s.path}: no such file or folder" for n, s in cfg.sources.items()
                if s.path is not None and not Path(s.path).exists()]
    problems += [f"curate.decontamination.eval_paths: {p}: no such file" for p in cfg.decontamination.eval_paths if not Path(p).is_file()]
    problems += [f"curate.sources.{n}.kind={s.kind} is not one of {', '.join(CONNECTORS)}" for n, s in cfg.sources.items()
                 if s.kind not in CONNECTORS]
    if not problems and all(s.path is None for s in cfg.sources.values()):
        names = ", ".join(cfg.sources)
        problems.append(f"no source has an input: give curate.sources.<name>.path for at least one of {names}")
    if problems:
        raise ConfigError(problems)
    rng = random.Random(cfg.seed)
    budget = BadRecordBudget(cfg.error_budget)
    dedup = Deduplicator(cfg.dedup.near_threshold, cfg.dedup.num_perm)
    grams = eval_ngrams(list(cfg.decontamination.eval_paths), cfg.decontamination.ngram)
    reports: dict[str, SourceReport] = {}
    chosen: list[Candidate] = []

    for name, src in cfg.sources.items():
        report = reports[name] = SourceReport(src.kind, src.path, src.target)
        if src.path is None:
            report.skipped = f"no input given (curate.sources.{name}.path)"
            log.warning("source %s skipped: %s", name, report.skipped)
            continue
        groups = candidates_for(name, src, cfg, rng, budget, report)
        report.candidates = sum(len(c) for c in groups.values())

        def accept(candidate: Candidate, report=report) -> bool:
            if overlaps(candidate.text, grams, cfg.decontamination.ngram):
                report.dropped["overlaps a dev/test prompt"] += 1
                return False
            turns = candidate.turns
            reason = dedup.duplicate("\n".join(turns[0::2]), "\n".join(turns[1::2]))
            if reason:
                report.dropped[reason] += 1
                return False
            return True

        picks = temperature_sample(groups, src.target, src.temperature, rng, accept)
        report.delivered = len(picks)
        report.groups.update(c.group for c in picks)
        if report.delivered < src.target:
            log.warning("source %s delivered %d of %d requested", name, report.delivered, src.target)
        chosen.extend(picks)

    rows = [{"conversations": list(c.turns), "source": candidate_source_name(c, cfg)} for c in chosen]
    rng.shuffle(rows)
    output = Path(cfg.output)
    write_atomically(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    card = data_card(cfg, reports, dedup, budget, rows)
    from lima_recipes.curate.card import write_card

    write_card(card, output)
    return card


def candidate_source_name(candidate: Candidate, cfg) -> str:
    """The config name of the source that chose a candidate (stackexchange_stem, ...)."""
    stem = set(cfg.stem_sites)
    for name, src in cfg.sources.items():
        if src.kind != candidate.source:
            continue
        if src.kind == "stackexchange" and src.domain is not None and (candidate.group in stem) != (src.domain == "stem"):
            continue
        return name
    return candidate.source


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
        if len(bucket) < per_source:
            bucket.append({"prompt": row["conversations"][0][:500], "response": row["conversations"][1][:800]})
    return out
