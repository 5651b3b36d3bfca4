"""Chat templates: each is a Jinja template installed into the tokenizer, so the text a model is
trained on is exactly what `tokenizer.apply_chat_template` renders at inference time, from the
training run to the exported model. The system prompt lives in the template too, and assistant
content is marked with `{% generation %}`, so `apply_chat_template(return_assistant_tokens_mask=True)`
(TRL's assistant-only loss) marks what our labels train."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lima_recipes.errors import ConfigError


@dataclass
class ChatTemplate:
    """A named chat template and the special tokens it needs in the vocabulary."""

    name: str
    eot_token: str | None = None
    extra_special_tokens: list[str] = field(default_factory=list)
    system_prompt: str | None = None

    def jinja(self) -> str | None:
        """The Jinja source written into the tokenizer; None keeps the tokenizer's own."""
        raise NotImplementedError

    def install(self, tokenizer) -> None:
        """Add this template's tokens and Jinja template to a tokenizer (idempotent)."""
        new_tokens = [t for t in [self.eot_token, *self.extra_special_tokens] if t]
        if new_tokens:
            tokenizer.add_special_tokens({"additional_special_tokens": new_tokens}, replace_extra_special_tokens=False)
        source = self.jinja()
        if source is not None:
            tokenizer.chat_template = source
        if self.system_prompt and getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = with_default_system(tokenizer.chat_template, self.system_prompt)
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"template={self.name}: the tokenizer of {getattr(tokenizer, 'name_or_path', '') or 'this model'} has no chat "
                "template (a base model?); choose template=lima or template=chatml"
            )
        if tokenizer.pad_token is None:
            # Padding is masked out of attention and loss, so any existing token serves.
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token

    def end_of_turn(self, tokenizer) -> str:
        """The token that closes an assistant turn: trained, and the stop token when generating."""
        token = self.eot_token or tokenizer.eos_token
        if token is None:
            raise ConfigError(f"template={self.name}: the tokenizer has no EOS token; set template.eot_token")
        return token



def with_default_system(source: str, system_prompt: str) -> str:
    """The template with `system_prompt` put first in any conversation that has no system message:
    training, generation and every user of the exported tokenizer render it alike. Idempotent."""
    # JSON string syntax is a valid Jinja string literal for any text (quotes, newlines escaped)
    head = ("{%- if not messages or messages[0]['role'] != 'system' %}{%- set messages = [{'role': 'system', 'content': "
            + json.dumps(system_prompt, ensure_ascii=False) + "}] + messages %}{%- endif %}")
    return source if source.startswith(head) else head + source


class LimaTemplate(ChatTemplate):
    """LIMA: the BOS token, then each utterance followed by the end-of-turn token. Speakers are
    told apart by alternation alone; the generation prompt is empty."""

    def jinja(self) -> str:
        eot = self.eot_token
        return (
            "{% if bos_token %}{{ bos_token }}{% endif %}"
            "{% for message in messages %}{% if message['role'] == 'assistant' %}"
            "{% generation %}{{ message['content'] }}" + eot + "{% endgeneration %}"
            "{% else %}{{ message['content'] }}" + eot + "{% endif %}{% endfor %}"
        )


class ChatMLTemplate(ChatTemplate):
    """ChatML: `<|im_start|>role\\ncontent<|im_end|>\\n` per message."""

    def jinja(self) -> str:
        start, end = self.extra_special_tokens[0], self.eot_token
        return (
            "{% if bos_token %}{{ bos_token }}{% endif %}"
            "{% for message in messages %}" + start + "{{ message['role'] }}\n"
            "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}" + end + "{% endgeneration %}"
            "{% else %}{{ message['content'] }}" + end + "{% endif %}\n"
            "{% endfor %}{% if add_generation_prompt %}" + start + "assistant\n{% endif %}"
        )


class ModelTemplate(ChatTemplate):
    """The tokenizer's own chat template, for models that ship one."""

    def jinja(self) -> None:
        return None


def build_template(cfg) -> ChatTemplate:
    """Instantiate the template named by `template._target_` from its config."""
    from hydra.utils import get_class

    cls = get_class(cfg._target_)
    return cls(
        name=cfg.name,
        eot_token=cfg.eot_token,
        extra_special_tokens=list(cfg.extra_special_tokens),
        system_prompt=cfg.system_prompt,
    )
