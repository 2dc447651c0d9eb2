"""HTML fragments from feeds -> plain text, with lxml's HTML parser (the only module that imports lxml).

Feed summaries and `content:encoded` are HTML written by strangers; we keep plain text only. libxml2 builds the
tree in C and one pass over it collects the text: on the real feeds of `make bench` about half the CPU of
html.parser, with the same text out (see docs/architecture.md "Performance facts"). Runs in the worker
processes, from parse.py.
"""

from __future__ import annotations

import html
import re
import threading

from lxml import etree

from .text import clean_text, collapse_spaces

# HTML characters read per character of text wanted: real fragments carry far more text than 1 in 8, and a
# 2 MB title bounded to 5,000 characters is not parsed to its end.
_MARKUP_PER_TEXT = 8
_TAG = re.compile(r"<[^>]*>?")
_PARSERS = threading.local()  # an lxml parser serves one thread at a time; building one costs more than a title
_BREAK_RANK = {"": 0, " ": 1, "\n": 2, "\n\n": 3}


def field_text(value: str, content_type: str, limit: int, *, one_line: bool = False) -> str:
    """Plain text from a feed field of the given type, bounded to `limit` characters."""
    if not isinstance(value, str) or not value:
        return ""
    if "html" in content_type and ("<" in value or "&" in value):  # text/html, application/xhtml+xml
        text = _html_to_text(value, limit)
    else:
        # Plain fields still arrive with entities escaped twice ("AT&amp;amp;T") often enough to unescape.
        text = html.unescape(value[: limit * 4])
    return collapse_spaces(clean_text(text), one_line)[:limit].rstrip()


def html_to_text(html_text: str) -> str:
    """Readable plain text from an HTML fragment: tags dropped, entities decoded, blocks on their own lines."""
    return collapse_spaces(clean_text(_html_to_text(html_text, None)), False)


class _TextCollector:
    """Text runs, and the widest break asked for by the tags between two of them."""

    # Elements whose content is code or markup, never prose.
    SKIP = frozenset({"script", "style", "template", "noscript", "svg", "math", "iframe", "object"})
    PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl"})
    LINE = frozenset(
        {"br", "div", "li", "tr", "dt", "dd", "hr", "section", "article", "header", "footer", "aside", "nav",
         "main", "figure", "figcaption", "address", "details", "summary", "caption", "form", "fieldset", "title"}
    )  # fmt: skip
    CELL = frozenset({"td", "th"})

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.skipping = 0
        self.pending = ""  # the widest break asked for since the last text: "", " ", "\n" or "\n\n"

    def start(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        self._boundary(tag)

    def end(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        self._boundary(tag)

    def data(self, data: str | None) -> None:
        if self.skipping or not data:
            return
        if self.pending and self.parts:
            self.parts.append(self.pending)
        self.pending = ""
        self.parts.append(data)

    def _boundary(self, tag: str) -> None:
        # </li><li> is one line break, not two: a boundary only widens the break before the next text.
        brk = "\n\n" if tag in self.PARAGRAPH else "\n" if tag in self.LINE else " " if tag in self.CELL else ""
        if _BREAK_RANK[brk] > _BREAK_RANK[self.pending]:
            self.pending = brk


def _parser() -> etree.HTMLParser:
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        # no_network: a fragment never makes the parser fetch anything (libxml2 does not for HTML, said anyway).
        parser = _PARSERS.parser = etree.HTMLParser(
            no_network=True, recover=True, remove_comments=True, remove_pis=True
        )
    return parser


def _html_to_text(html_text: str, limit: int | None) -> str:
    """The fragment's text, reading at most `limit` * 8 characters of it when bounded."""
    if limit is not None:
        html_text = html_text[: limit * _MARKUP_PER_TEXT]
    # Controls and lone surrogates out first: libxml2 refuses a string it cannot encode as UTF-8.
    html_text = clean_text(html_text)
    if not html_text.strip():
        return ""
    try:
        root = etree.fromstring(html_text, _parser())
    except (etree.LxmlError, ValueError):  # markup libxml2 gives up on even in recovery: strip crudely
        return html.unescape(_TAG.sub(" ", html_text))
    if root is None:  # nothing but a comment or a doctype
        return ""
    collector = _TextCollector()
    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""  # an entity reference has a function for a tag
        if event == "start":
            collector.start(tag)
            collector.data(element.text)
        else:
            collector.end(tag)
            collector.data(element.tail)
    return "".join(collector.parts)
