"""File writing that never leaves a half-written file for another step to read."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_jsonl(path: Path, records) -> None:
    """One JSON object per line, atomically (UTF-8 kept as written, not escaped)."""
    write_atomically(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_atomically(path: Path, text: str | bytes) -> None:
    """Readers see the old file or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8")) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, ordinary_mode(is_dir=False))  # mkstemp makes 0600; a dataset is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ordinary_mode(is_dir: bool) -> int:
    """The mode a plain `open`/`mkdir` would give under the process umask (mkstemp, mkdtemp and
    safetensors make owner-only files; what we write is meant to be shared like any other)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if is_dir else 0o666) & ~umask
