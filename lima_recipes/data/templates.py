"""Chat templates: each is a Jinja template installed into the tokenizer, so the text a model is
trained on is exactly what `tokenizer.apply_chat_template` renders at inference time."""

from __future__ import annotations

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
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"template={self.name} uses the tokenizer's own chat template, but the tokenizer has "
                "none (choose template=lima or template=chatml)"
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

    def with_system(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        if self.system_prompt and (not messages or messages[0]["role"] != "system"):
            return [{"role": "system", "content": self.system_prompt}, *messages]
        return messages


class LimaTemplate(ChatTemplate):
    """LIMA: the BOS token, then each utterance followed by the end-of-turn token. Speakers are
    told apart by alternation alone; the generation prompt is empty."""

    def jinja(self) -> str:
        eot = self.eot_token
        return (
            "{% if bos_token %}{{ bos_token }}{% endif %}"
            "{% for message in messages %}{{ message['content'] }}" + eot + "{% endfor %}"
        )


class ChatMLTemplate(ChatTemplate):
    """ChatML: `<|im_start|>role\\ncontent<|im_end|>\\n` per message."""

    def jinja(self) -> str:
        start, end = self.extra_special_tokens[0], self.eot_token
        return (
            "{% if bos_token %}{{ bos_token }}{% endif %}"
            "{% for message in messages %}" + start + "{{ message['role'] }}\n{{ message['content'] }}"
            + end + "\n{% endfor %}{% if add_generation_prompt %}" + start + "assistant\n{% endif %}"
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
