"""HTML post bodies -> Markdown, the way LIMA cleaned Stack Exchange: code blocks and lists kept,
links reduced to their text, images and other markup removed."""

from __future__ import annotations

import re

from markdownify import markdownify

_BLANK_RUNS = re.compile(r"\n{3,}")


def html_to_markdown(html: str) -> str:
    text = markdownify(html, heading_style="ATX", bullets="-", strip=["a", "img"])
    return _BLANK_RUNS.sub("\n\n", text).strip()
