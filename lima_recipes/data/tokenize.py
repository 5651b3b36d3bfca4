"""Conversation -> token ids and labels, with the loss only on assistant turns.

The text is rendered by the tokenizer's chat template (the one the exported model ships), and
the assistant spans are found by rendering each prefix of the conversation: the prefix with a
generation prompt ends where an assistant turn starts, and the turn ends with its end-of-turn
token. Tokens that overlap a span are trained (so a token merging the prompt's last space with
the answer's first letter is learned); all others get -100.
"""

from __future__ import annotations

from dataclasses import dataclass

from lima_recipes.data.records import ASSISTANT, Conversation
from lima_recipes.data.templates import ChatTemplate
from lima_recipes.errors import DataFormatError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool
    """True when the rendered conversation was longer than max_length and cut from the end."""

    @property
    def num_trained(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def render(messages: list[dict[str, str]], tokenizer, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(conv: Conversation, tokenizer, template: ChatTemplate) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the [start, end) character span of every assistant turn."""
    messages = conv.as_dicts()  # the template adds template.system_prompt, as it does at inference
    text = render(messages, tokenizer, add_generation_prompt=False)
    eot = template.end_of_turn(tokenizer)
    # Any special token spelled out in a turn would be parsed as the token itself (a literal
    # "</s>" would end the text), so such records are refused rather than silently changed.
    forbidden = sorted({t for t in [eot, *template.extra_special_tokens, *tokenizer.all_special_tokens] if t})
    spans = []
    for i, message in enumerate(messages):
        if any(tok in message["content"] for tok in forbidden):
            found = next(tok for tok in forbidden if tok in message["content"])
            raise DataFormatError(f"{conv.origin}: turn {i + 1} contains the special token {found!r}")
        if message["role"] != ASSISTANT:
            continue
        prompt = render(messages[:i], tokenizer, add_generation_prompt=True)
        through = render(messages[: i + 1], tokenizer, add_generation_prompt=False)
        if not (text.startswith(prompt) and text.startswith(through)):
            raise DataFormatError(
                f"{conv.origin}: template={template.name} does not render conversations incrementally "
                "(a prefix of the conversation renders differently), so assistant turns cannot be located"
            )
        start = len(prompt)
        content_end = start + len(message["content"])
        eot_at = text.find(eot, content_end)
        end = eot_at + len(eot) if 0 <= eot_at < len(through) else len(through)
        spans.append((start, end))
    return text, spans


def tokenize_conversation(
    conv: Conversation, tokenizer, template: ChatTemplate, max_length: int, last_turn_only: bool = False
) -> TokenizedExample:
    """Tokens and labels for one conversation, cut to max_length tokens from the end.

    last_turn_only: train the final assistant turn alone (a preference pair's answer; the earlier
    turns are its context)."""
    text, spans = assistant_spans(conv, tokenizer, template)
    if last_turn_only:
        spans = spans[-1:]
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoding["input_ids"])
    labels = [IGNORE_INDEX] * len(input_ids)
    span_iter = iter(spans)
    span = next(span_iter, None)
    for i, (start, end) in enumerate(encoding["offset_mapping"]):
        while span is not None and start >= span[1]:
            span = next(span_iter, None)
        if span is not None and start < span[1] and end > span[0]:
            labels[i] = input_ids[i]
    truncated = len(input_ids) > max_length
    return TokenizedExample(input_ids[:max_length], labels[:max_length], truncated)
