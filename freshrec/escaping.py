"""Escaping for values from the data on their way into Markdown (Prefect artifacts) and HTML reports."""

from __future__ import annotations

import html
import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()|~!])")
_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def markdown_text(value: object) -> str:
    """Plain text inside one Markdown line or table cell: no raw HTML, no links or emphasis, no new rows."""
    text = html.escape(str(value), quote=True)  # < > & " ': raw HTML cannot open
    text = _BREAKS.sub(" ", text)                 # control characters and line breaks: one line stays one line
    return _MARKDOWN.sub(r"\\\1", text)


def html_safe_category(value: object) -> object:
    """A category value safe to embed anywhere in an HTML page, including inside a <script> block.

    html.escape is one-to-one (it escapes '&' too, and control characters become numeric entities), so
    distinct categories stay distinct and drift measured on the escaped values is the drift of the originals. Non-strings (numbers, missing values) pass unchanged.
    """
    if not isinstance(value, str):
        return value
    return _BREAKS.sub(lambda m: "".join(f"&#{ord(c)};" for c in m.group()), html.escape(value, quote=True))
