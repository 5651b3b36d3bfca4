"""HTML post bodies -> Markdown, the way LIMA cleaned Stack Exchange: code blocks and lists kept,
links reduced to their text, images and other markup removed."""

from __future__ import annotations

import re

from markdownify import MarkdownConverter

_BLANK_RUNS = re.compile(r"\n{3,}")
_URL = re.compile(r"^\s*(https?://|www\.)\S*\s*$")


class _LimaConverter(MarkdownConverter):
    def convert_a(self, el, text, *args, **kwargs):
        # Keep a link's words, never its address: auto-linked URLs ("https://...") vanish.
        return "" if _URL.match(text or "") else text

    def convert_img(self, el, text, *args, **kwargs):
        return ""


def html_to_markdown(html: str) -> str:
    # No escaping of _ and *: a model trained on `my\_var` learns to write backslashes.
    converter = _LimaConverter(heading_style="ATX", bullets="-", escape_underscores=False, escape_asterisks=False)
    return _BLANK_RUNS.sub("\n\n", converter.convert(html)).strip()
