"""Progress bars for connectors: bytes read of each input file (a spinner for compressed input),
on stderr and only on a terminal, so logs and CI output stay clean."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

_STEP = 1 << 20  # refresh every MiB: per-line updates would cost more than the parsing


def track_bytes(lines: Iterable[bytes], path: Path, description: str, compressed: bool = False) -> Iterator[bytes]:
    """Yield `lines` unchanged while a bar follows how many bytes have been read."""
    console = Console(stderr=True)
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"{description} {path.name}", total=None if compressed else path.stat().st_size)
        pending = 0
        for line in lines:
            pending += len(line)
            if pending >= _STEP:
                progress.advance(task, pending)
                pending = 0
            yield line
        progress.advance(task, pending)




def track_items(items: list, description: str) -> Iterator:
    """Yield `items` unchanged while a bar counts them (for inputs read a whole file at a time)."""
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=len(items))
        for item in items:
            yield item
            progress.advance(task)
