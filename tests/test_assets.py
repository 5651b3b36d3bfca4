"""The shipped tiny tokenizer is exactly what recipes/build_tokenizer.py makes from the sample data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tokenizer_is_rebuilt_identically_from_the_sample_data(tmp_path):
    spec = importlib.util.spec_from_file_location("build_tokenizer", ROOT / "recipes" / "build_tokenizer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rebuilt = script.build(script.sample_texts(script.ASSETS / "sample"), vocab_size=2048)
    rebuilt.save_pretrained(tmp_path)
    shipped = json.loads((script.ASSETS / "tiny_tokenizer" / "tokenizer.json").read_text())
    fresh = json.loads((tmp_path / "tokenizer.json").read_text())
    assert fresh["model"]["vocab"] == shipped["model"]["vocab"]
    assert fresh["model"]["merges"] == shipped["model"]["merges"]
    assert len(shipped["model"]["vocab"]) == 2048
