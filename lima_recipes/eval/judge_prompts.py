"""Versioned judge prompts (conf/judge_prompts/*.yaml) and the [[verdict]] replies they ask for.

A prompt's version is its name plus a hash of the file, so a reworded prompt never reuses cached
verdicts given to the old wording.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from lima_recipes.errors import ConfigError

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "conf" / "judge_prompts"
_FIELD = re.compile(r"\{(question|answer|answer_a|answer_b)\}")
_VERDICT = re.compile(r"\[\[\s*([^\[\]]{1,20}?)\s*\]\]")


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    version: str
    system: str
    user: str
    labels: tuple[str, ...]

    def messages(self, **fields: str) -> list[dict]:
        # One pass over the template: an answer that itself contains "{answer_b}" stays literal.
        user = _FIELD.sub(lambda m: fields[m.group(1)], self.user)
        return [{"role": "system", "content": self.system.strip()}, {"role": "user", "content": user.strip()}]

    def parse(self, reply: str) -> str | None:
        """The verdict label, or None when the reply names none or several different ones."""
        by_lower = {label.lower(): label for label in self.labels}
        found = {by_lower[m.lower()] for m in _VERDICT.findall(reply or "") if m.lower() in by_lower}
        return found.pop() if len(found) == 1 else None


def load_judge_prompt(name_or_path: str | None, eval_name: str) -> JudgePrompt:
    if not name_or_path:
        raise ConfigError(f"eval={eval_name} needs a judge prompt: set eval.prompt=<name in conf/judge_prompts or a path>")
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml")))
        raise ConfigError(f"eval.prompt={name_or_path}: no file {path} (shipped prompts: {known})")
    raw = path.read_bytes()
    try:
        spec = yaml.safe_load(raw)
        prompt = JudgePrompt(name=path.stem, version=f"{path.stem}@{hashlib.sha256(raw).hexdigest()[:12]}",
                             system=spec["system"], user=spec["user"], labels=tuple(str(x) for x in spec["labels"]))
    except (yaml.YAMLError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: a judge prompt needs `system`, `user` and `labels` ({type(err).__name__}: {err})") from None
    return prompt
