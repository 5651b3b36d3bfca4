"""What every connector yields, and the draw that mixes groups (sites, categories) by temperature."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    source: str
    turns: tuple[str, ...]
    """user, assistant, user, assistant... (one exchange for every raw source)."""
    priority: float
    """Higher is better inside its group (question score for Stack Exchange)."""
    group: str
    """Sampling unit inside the source (the site for Stack Exchange)."""
    origin: str
    system: str | None = None
    """A system message (hand-written examples may carry one)."""

    @property
    def text(self) -> str:
        return "\n".join(self.turns)


def temperature_sample(by_group: dict[str, list[Candidate]], target: int, temperature: float,
                       rng: random.Random, accept=lambda candidate: True,
                       sizes: dict[str, int] | None = None) -> list[Candidate]:
    """Draw `target` candidates, picking a group with p ~ size^(1/temperature) each time and taking
    its best remaining candidate that `accept` allows: small sites are not drowned by large ones
    (LIMA: tau = 3). `sizes` are the groups' real sizes (a site's question count, not its
    capped candidate list); by default the candidate counts. The odds stay fixed while drawing."""
    queues = {g: list(c) for g, c in sorted(by_group.items()) if c}
    sizes = {g: (sizes or {}).get(g, len(c)) for g, c in queues.items()}
    chosen: list[Candidate] = []
    while len(chosen) < target and queues:
        groups = sorted(queues)
        weights = [sizes[g] ** (1.0 / temperature) for g in groups]
        group = rng.choices(groups, weights=weights)[0]
        candidate = queues[group].pop(0)
        if accept(candidate):
            chosen.append(candidate)
        if not queues[group]:
            del queues[group]
    return chosen
