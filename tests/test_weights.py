"""Loading pretrained weights from a local directory (the path real LIMA runs take), and the
clear errors when they are missing or of another architecture."""

from __future__ import annotations

import pytest
import torch

from lima_recipes.errors import ConfigError, WeightsNotFoundError
from lima_recipes.model.build import build_model, check_weights_available


@pytest.fixture
def pretrained_dir(tmp_path, compose_cfg, tiny_tokenizer):
    """A 'pretrained' tiny Llama saved the way the hub stores models (no template tokens yet)."""
    model = build_model(compose_cfg().model, tiny_tokenizer, seed=7)
    model.save_pretrained(tmp_path / "pretrained")
    tiny_tokenizer.save_pretrained(tmp_path / "pretrained")
    return tmp_path / "pretrained", model


def test_local_weights_load_and_the_embedding_grows_for_the_eot_token(compose_cfg, pretrained_dir, lima_template):
    from transformers import AutoTokenizer

    path, saved = pretrained_dir
    cfg = compose_cfg(f"model.path={path}", "model.tokenizer_path=null")
    tokenizer = AutoTokenizer.from_pretrained(path)
    lima_template.install(tokenizer)
    loaded = build_model(cfg.model, tokenizer, seed=0)
    old = saved.get_input_embeddings().weight
    new = loaded.get_input_embeddings().weight
    assert new.shape[0] == old.shape[0] + 1 == len(tokenizer)
    torch.testing.assert_close(new[:-1], old)  # pretrained rows untouched, not re-initialised
    torch.testing.assert_close(loaded.model.layers[0].mlp.up_proj.weight, saved.model.layers[0].mlp.up_proj.weight)


def test_preset_that_does_not_match_the_checkpoint_is_a_config_error(compose_cfg, pretrained_dir, tiny_tokenizer):
    path, _ = pretrained_dir
    with pytest.raises(ConfigError, match=r"is not a llama7b \(hidden_size: preset 4096, checkpoint 64"):
        build_model(compose_cfg("model=llama7b", f"model.path={path}").model, tiny_tokenizer, seed=0)


def test_missing_local_weights_say_what_to_do(compose_cfg, tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"model.path=.*no config.json there; pass model.path=/local/dir"):
        check_weights_available(compose_cfg(f"model.path={tmp_path}").model)


def test_uncached_hub_id_fails_fast_offline(compose_cfg):
    with pytest.raises(WeightsNotFoundError, match=r"model.path=huggyllama/llama-65b is not in the local Hugging Face cache"):
        check_weights_available(compose_cfg("model=llama65b").model)


def test_lima1k_preset_reads_a_local_copy_and_keeps_single_turn_examples(compose_cfg):
    from lima_recipes.config.plan import count_examples
    from lima_recipes.config.resolvers import asset_path

    examples, note = count_examples(compose_cfg("data=lima1k", f"data.path={asset_path('sample/train.jsonl')}"))
    assert examples == 35 and "train.jsonl" in note  # the 5 multi-turn chains are left out
    examples, _ = count_examples(compose_cfg("data=lima_multiturn", f"data.path={asset_path('sample/train.jsonl')}"))
    assert examples == 40
