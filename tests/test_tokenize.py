"""Labels against hand-built expectations; the end-of-turn token is trained; training render is
the inference render of the exported tokenizer."""

from __future__ import annotations

import pytest
import torch

from lima_recipes.data.records import Conversation, Message
from lima_recipes.data.templates import ChatMLTemplate, LimaTemplate, ModelTemplate
from lima_recipes.data.tokenize import IGNORE_INDEX, tokenize_conversation
from lima_recipes.errors import ConfigError, DataFormatError


def conv(*turns: str) -> Conversation:
    return Conversation(tuple(Message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(turns)), origin="t:1")


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_single_turn_labels_match_hand_built(tiny_tokenizer, lima_template):
    lima_template.install(tiny_tokenizer)
    bos, eot = tiny_tokenizer.bos_token_id, tiny_tokenizer.convert_tokens_to_ids("<|eot|>")
    user, answer = ids(tiny_tokenizer, "How do I sort a list?"), ids(tiny_tokenizer, "Use sorted(items).")
    ex = tokenize_conversation(conv("How do I sort a list?", "Use sorted(items)."), tiny_tokenizer, lima_template, 2048)
    assert ex.input_ids == [bos, *user, eot, *answer, eot]
    n_prompt = 1 + len(user) + 1
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ex.labels[n_prompt:] == [*answer, eot]  # the end-of-turn token is trained
    assert not ex.truncated


def test_multi_turn_trains_every_assistant_turn(tiny_tokenizer, lima_template):
    lima_template.install(tiny_tokenizer)
    eot = tiny_tokenizer.convert_tokens_to_ids("<|eot|>")
    u1, a1, u2, a2 = (ids(tiny_tokenizer, t) for t in ("Hi there.", "Hello!", "Name a colour.", "Blue."))
    ex = tokenize_conversation(conv("Hi there.", "Hello!", "Name a colour.", "Blue."), tiny_tokenizer, lima_template, 2048)
    masked = lambda n: [IGNORE_INDEX] * n  # noqa: E731
    assert ex.labels == [*masked(1 + len(u1) + 1), *a1, eot, *masked(len(u2) + 1), *a2, eot]


def test_chatml_masks_role_headers_and_trains_im_end(tiny_tokenizer):
    template = ChatMLTemplate(name="chatml", eot_token="<|im_end|>", extra_special_tokens=["<|im_start|>"])
    template.install(tiny_tokenizer)
    ex = tokenize_conversation(conv("Q?", "A."), tiny_tokenizer, template, 2048)
    trained = [t for t, label in zip(ex.input_ids, ex.labels) if label != IGNORE_INDEX]
    assert tiny_tokenizer.decode(trained) == "A.<|im_end|>"


def test_model_template_uses_the_tokenizers_own(tiny_tokenizer):
    tiny_tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
    template = ModelTemplate(name="model")
    template.install(tiny_tokenizer)
    ex = tokenize_conversation(conv("Q?", "A."), tiny_tokenizer, template, 2048)
    trained = [t for t, label in zip(ex.input_ids, ex.labels) if label != IGNORE_INDEX]
    # " A" is one token spanning the prompt's trailing space and the answer: it is trained, so
    # the model learns the answer's first letter.
    assert tiny_tokenizer.decode(trained) == " A.</s>"


def test_model_template_without_one_in_the_tokenizer_is_a_config_error(tiny_tokenizer):
    tiny_tokenizer.chat_template = None
    with pytest.raises(ConfigError, match=r"^template=model: the tokenizer of .*tiny_tokenizer has no chat template \(a base model\?\); "
                                          r"choose template=lima or template=chatml$"):
        ModelTemplate(name="model").install(tiny_tokenizer)


TEMPLATES = {
    "lima": lambda system=None: LimaTemplate(name="lima", eot_token="<|eot|>", system_prompt=system),
    "chatml": lambda system=None: ChatMLTemplate(name="chatml", eot_token="<|im_end|>", extra_special_tokens=["<|im_start|>"],
                                                 system_prompt=system),
}
SYSTEM = 'You are "helpful".\nAnswer in full sentences.'


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("system", [None, SYSTEM])
def test_training_render_equals_what_generation_gives_the_exported_model(tiny_tokenizer, name, system, tmp_path):
    """Through the functions production uses: the training tokenizer, export_model's files, and
    make generate's prompt rendering of the reloaded export."""
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer, LlamaConfig

    from lima_recipes.eval.generate import prompt_text
    from lima_recipes.model.export import write_model_files

    template = TEMPLATES[name](system)
    template.install(tiny_tokenizer)
    config = OmegaConf.create({"do_sample": True, "top_p": 0.9, "temperature": 0.7, "repetition_penalty": 1.2, "max_new_tokens": 8})
    write_model_files(tmp_path, LlamaConfig(), torch.float32, tiny_tokenizer, template.end_of_turn(tiny_tokenizer), config)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    c = conv("First?", "One.", "Second?", "Two.")
    ex = tokenize_conversation(c, tiny_tokenizer, template, 2048)
    prompt_ids = reloaded(prompt_text(c.as_dicts()[:3], reloaded), add_special_tokens=False)["input_ids"]
    # The inference prompt is a prefix of the training tokens, and what follows it is trained.
    assert ex.input_ids[: len(prompt_ids)] == prompt_ids
    assert ex.labels[len(prompt_ids)] == ex.input_ids[len(prompt_ids)] != IGNORE_INDEX
    rendered = tiny_tokenizer.decode(ex.input_ids)
    assert (SYSTEM in rendered) == (system is not None) and rendered.count(SYSTEM) <= 1


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("turns", [("Hi?", "Hello."), ("First?", "One.", "Second?", "Two, with more words."),
                                   ("Only the question?",)])
def test_our_labels_train_what_hfs_assistant_mask_marks(tiny_tokenizer, name, turns):
    """An independent reference for the masking: transformers' own assistant mask of the
    template's {% generation %} blocks (what TRL's assistant-only loss uses)."""
    template = TEMPLATES[name](SYSTEM)
    template.install(tiny_tokenizer)
    c = conv(*turns)
    ex = tokenize_conversation(c, tiny_tokenizer, template, 2048)
    hf = tiny_tokenizer.apply_chat_template(c.as_dicts(), tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert hf["input_ids"] == ex.input_ids
    assert hf["assistant_masks"] == [int(label != IGNORE_INDEX) for label in ex.labels]


def test_truncation_cuts_from_the_end_and_flags_it(tiny_tokenizer, lima_template):
    lima_template.install(tiny_tokenizer)
    full = tokenize_conversation(conv("Tell me a story.", "Once upon a time " * 20), tiny_tokenizer, lima_template, 2048)
    cut = tokenize_conversation(conv("Tell me a story.", "Once upon a time " * 20), tiny_tokenizer, lima_template, 16)
    assert cut.truncated and len(cut.input_ids) == 16 and cut.input_ids == full.input_ids[:16]


def test_special_tokens_inside_content_are_rejected_with_origin(tiny_tokenizer, lima_template):
    lima_template.install(tiny_tokenizer)
    with pytest.raises(DataFormatError, match=r"t:1: turn 2 contains the special token .<\|eot\|>."):
        tokenize_conversation(conv("Q", "A <|eot|> B"), tiny_tokenizer, lima_template, 2048)


def test_literal_special_tokens_of_the_tokenizer_are_refused(tiny_tokenizer, lima_template):
    lima_template.install(tiny_tokenizer)
    with pytest.raises(DataFormatError, match=r"t:1: turn 2 contains the special token '</s>'"):
        tokenize_conversation(conv("Q", "HTML ends with </s> here"), tiny_tokenizer, lima_template, 2048)
