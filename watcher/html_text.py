"""HTML fragments from feeds -> plain text, with lxml's HTML parser (the only module that imports lxml).

Feed summaries and `content:encoded` are HTML written by strangers; we keep plain text only. libxml2 tokenises in C
and calls a small Python target per tag and text run: 2.2x less CPU than html.parser on the real feeds of
`make bench`, with the same text out (758 of 758 fragments; see docs/architecture.md "Performance facts").
Runs in the worker processes, from parse.py.
"""

from __future__ import annotations

import html
import re

from lxml import etree

from .text import clean_text, collapse_spaces

_CHUNK = 65_536
_TAG = re.compile(r"<[^>]*>?")
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
    """The parser's target: text runs, and the widest break asked for by the tags between two of them."""

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
        self.size = 0
        self.skipping = 0
        self.pending = ""  # the widest break asked for since the last text: "", " ", "\n" or "\n\n"

    def start(self, tag: str, attrib: object) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        self._boundary(tag)

    def end(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        self._boundary(tag)

    def data(self, data: str) -> None:
        if self.skipping:
            return
        if self.pending and self.parts:
            self.parts.append(self.pending)
        self.pending = ""
        self.parts.append(data)
        self.size += len(data)

    def comment(self, text: str) -> None:
        pass  # without this method lxml would hand comments to data()

    def close(self) -> str:
        return "".join(self.parts)

    def _boundary(self, tag: str) -> None:
        # </li><li> is one line break, not two: a boundary only widens the break before the next text.
        brk = "\n\n" if tag in self.PARAGRAPH else "\n" if tag in self.LINE else " " if tag in self.CELL else ""
        if _BREAK_RANK[brk] > _BREAK_RANK[self.pending]:
            self.pending = brk


def _html_to_text(html_text: str, limit: int | None) -> str:
    """Feed the parser in chunks and stop once `limit` characters of text are in hand: a 1 MB title costs
    no more than it must."""
    # Controls and lone surrogates out first: libxml2 refuses a string it cannot encode as UTF-8.
    html_text = clean_text(html_text)
    collector = _TextCollector()
    # no_network: a fragment never makes the parser fetch anything (libxml2 does not for HTML, said anyway).
    parser = etree.HTMLParser(target=collector, no_network=True, recover=True, remove_pis=True)
    try:
        for start in range(0, len(html_text), _CHUNK):
            parser.feed(html_text[start : start + _CHUNK])
            if limit is not None and collector.size > limit * 2:
                break
        text: str = parser.close()
    except (etree.LxmlError, ValueError):  # markup libxml2 gives up on even in recovery: strip crudely
        return html.unescape(_TAG.sub(" ", html_text if limit is None else html_text[: limit * 4]))
    return text
