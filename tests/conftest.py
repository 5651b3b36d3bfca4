"""Shared fixtures: the composed default config, the shipped tiny tokenizer, hermetic env."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run where CUDA is; elsewhere they are skipped, saying so."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def compose_cfg(tmp_path):
    """compose(overrides) with outputs and caches under the test's tmp_path."""
    from lima_recipes.config import compose

    def _compose(*overrides: str):
        return compose([f"run.output_root={tmp_path}/outputs", f"data.cache_dir={tmp_path}/cache",
                        f"stage.reference_cache_dir={tmp_path}/reference", "logger=csv", *overrides])

    return _compose


@pytest.fixture
def tiny_tokenizer():
    from transformers import AutoTokenizer

    from lima_recipes.config.resolvers import asset_path

    return AutoTokenizer.from_pretrained(asset_path("tiny_tokenizer"))


@pytest.fixture
def lima_template():
    from lima_recipes.data.templates import LimaTemplate

    return LimaTemplate(name="lima", eot_token="<|eot|>")


@pytest.fixture(scope="session")
def sft_export(tmp_path_factory):
    """The tiny model after a short SFT run on the sample conversations (about 10 s): what DPO and
    `make pairs` start from."""
    from pathlib import Path

    from lima_recipes.config import compose
    from lima_recipes.train.run import run_training

    root = tmp_path_factory.mktemp("sft")
    cfg = compose([f"run.output_root={root}", f"data.cache_dir={root}/cache", "logger=csv", "trainer.enable_progress_bar=false",
                   "trainer.max_epochs=2", "trainer.checkpoint_epochs=[]", "trainer.micro_batch_size=8"])
    return Path(run_training(cfg, root / "run")["export"])
