"""Exact and near-duplicate removal across all sources: normalised hashes of the whole example
and of the prompt, then MinHash LSH over word 3-gram shingles of the response. Near copies are
judged on the response because the prompt may be a title or a body chosen at random, which
would hide a copied answer. Candidates are visited in a seeded order, so the same copy is kept."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from datasketch import MinHash, MinHashLSH

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def shingles(text: str, n: int = 3) -> set[str]:
    tokens = words(text)
    if len(tokens) < n:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def _digest(text: str) -> str:
    return hashlib.sha1(" ".join(words(text)).encode()).hexdigest()


class Deduplicator:
    def __init__(self, near_threshold: float = 0.8, num_perm: int = 128):
        self.lsh = MinHashLSH(threshold=near_threshold, num_perm=num_perm)
        self.num_perm = num_perm
        self.exact: set[str] = set()
        self.prompts: set[str] = set()
        self.dropped: Counter = Counter()
        self._next = 0

    def duplicate(self, prompt: str, response: str) -> str | None:
        """None the first time an example (or a near copy of it) is seen, which also records it;
        afterwards the reason it is a duplicate."""
        digest = _digest(prompt + "\n" + response)
        prompt_digest = _digest(prompt)
        reason = None
        if digest in self.exact:
            reason = "exact duplicate"
        elif prompt_digest in self.prompts:
            reason = "duplicate prompt"
        # Short answers ("Yes", "positive") look alike whatever the question: judge those on the
        # whole example, long ones on the response alone.
        basis = response if len(words(response)) >= 50 else prompt + "\n" + response
        signature = MinHash(num_perm=self.num_perm, seed=1)
        for shingle in shingles(basis):
            signature.update(shingle.encode())
        if reason is None and self.lsh.query(signature):
            reason = "near duplicate"
        if reason:
            self.dropped[reason] += 1
            return reason
        self.exact.add(digest)
        self.prompts.add(prompt_digest)
        self.lsh.insert(str(self._next), signature)
        self._next += 1
        return None
