"""Feed text made fit to show (alerts, the analyst's page, the command line): hostile text is cut, cleaned of
control and invisible characters, and links are http(s) only (docs/reliability.md, "What it may write"). Pure.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

URL_MAX = 2000

# C0/C1 controls (tab and newlines handled separately), zero-width and bidi controls (text spoofing), BOM.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_BREAKS = re.compile("[\t\n\x0b\x0c\r\x1c-\x1e\x85\u2028\u2029]+")
_SPACES = re.compile(r"[ \u00a0]{2,}")
_MARK = re.compile(r"\[\[(.+?)\]\]", re.DOTALL)
# Characters that end or split a link in HTML attributes or Slack's <url|text> syntax: percent-encode them.
_URL_QUOTE = {"|": "%7C", "<": "%3C", ">": "%3E", '"': "%22", "'": "%27", "`": "%60", "\\": "%5C", " ": "%20"}


def display_text(value: object, limit: int | None = None) -> str:
    """One line of displayable text: no control or invisible characters, whitespace collapsed, at most `limit`."""
    text = "" if value is None else str(value)
    # Lone surrogates (from bytes that were not UTF-8) cannot be encoded by email or JSON: replace them.
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = _BREAKS.sub(" ", text)
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return truncate(text, limit)


def truncate(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space > limit * 0.8:  # end at a word when one is near
        cut = cut[:space]
    return cut.rstrip() + "…"


def safe_url(url: str | None) -> str | None:
    """The URL if it is an absolute http(s) URL fit to be a link, else None (never `javascript:`, `data:`...)."""
    if not url:
        return None
    url = url.strip()
    if len(url) > URL_MAX or _INVISIBLE.search(url) or _BREAKS.search(url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return "".join(_URL_QUOTE.get(ch, ch) for ch in url)


def split_marks(snippet: str) -> tuple[tuple[str, bool], ...]:
    """'a [[drone]] b' -> (('a ', False), ('drone', True), (' b', False)): the store marks terms with [[ ]]."""
    segments: list[tuple[str, bool]] = []
    pos = 0
    for m in _MARK.finditer(snippet):
        if m.start() > pos:
            segments.append((snippet[pos : m.start()], False))
        segments.append((m.group(1), True))
        pos = m.end()
    if pos < len(snippet):
        segments.append((snippet[pos:], False))
    return tuple(segments)
