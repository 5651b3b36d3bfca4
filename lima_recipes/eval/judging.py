"""Ask a judge about many items through the disk cache, and re-ask where no verdict parses.

A re-ask shows the judge its own reply and asks for the verdict line alone: judges that reasoned
well but forgot the [[...]] format usually fix it, where repeating the same request would not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lima_recipes.eval.judge_prompts import JudgePrompt
from lima_recipes.eval.judges import ReplyCache


@dataclass
class Verdict:
    label: str | None
    """The parsed verdict; None when every attempt was unparseable (counted as invalid)."""
    replies: list[str] = field(default_factory=list)
    """Every reply the judge gave, in order of the attempts."""


@dataclass
class RequestCount:
    cached: int = 0
    new: int = 0


def follow_up(prompt: JudgePrompt, reply: str) -> list[dict]:
    forms = ", ".join(f"[[{label}]]" for label in prompt.labels)
    return [{"role": "assistant", "content": reply},
            {"role": "user", "content": f"Your reply did not end with a verdict I could read. Reply with the verdict alone, "
                                        f"in exactly one of these forms: {forms}."}]


def judge_all(judge, prompt: JudgePrompt, items: list[dict[str, str]], cache: ReplyCache, invalid_retries: int,
              settings: dict, count: RequestCount | None = None) -> list[Verdict]:
    """One Verdict per item; `items` are the prompt's fields (question, answer or answer_a/_b)."""
    count = count if count is not None else RequestCount()
    verdicts = [Verdict(None) for _ in items]
    conversations = [prompt.messages(**fields) for fields in items]
    still_open = list(range(len(items)))
    for attempt in range(invalid_retries + 1):
        keys = {i: cache.key(prompt.version, judge.model, conversations[i], settings, attempt) for i in still_open}
        replies = {i: cache.get(keys[i]) for i in still_open}
        pending = [i for i in still_open if replies[i] is None]
        count.cached += len(still_open) - len(pending)
        count.new += len(pending)

        def on_reply(position: int, reply: str, attempt: int = attempt) -> None:
            index = pending[position]
            replies[index] = reply
            cache.put(keys[index], reply, prompt_version=prompt.version, judge_model=judge.model, attempt=attempt)

        judge.complete([conversations[i] for i in pending], on_reply)
        unparsed = []
        for i in still_open:
            verdicts[i].replies.append(replies[i])
            verdicts[i].label = prompt.parse(replies[i])
            if verdicts[i].label is None:
                unparsed.append(i)
                conversations[i] = conversations[i] + follow_up(prompt, replies[i])
        still_open = unparsed
        if not still_open:
            break
    return verdicts
