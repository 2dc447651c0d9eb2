"""Feed bodies -> Entry values: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed through jsonfeed.py.

This is the only module that imports feedparser. It gets bytes that strangers wrote, so (docs/reliability.md,
"What it may read"): only expat parses XML, no DTD or entity is ever fetched or read, a document that
declares entities is refused before any parser sees it, and every string that leaves is valid Unicode
without control characters, truncated to a bound.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
import xml.sax
import xml.sax.expatreader
import xml.sax.xmlreader
from dataclasses import dataclass
from datetime import UTC, datetime

import feedparser
import feedparser.api
import feedparser.encodings

from watcher import jsonfeed
from watcher.errors import ParseError
from watcher.html_text import field_text
from watcher.models import Entry, FetchedFeed, ParsedFeed
from watcher.text import canonical_url, clean_text, safe_link

MAX_FEED_BYTES = 16 * 1024 * 1024  # for callers without a config; the pipeline passes `[fetch] max_feed_mb`
_MAX_ID_CHARS = 1024  # longer guids are hashed: they are keys in the store, not text
_MIN_YEAR, _MAX_YEAR = 1970, 2100  # outside this a feed date is a typo or a trick (year 9999), not news


def _use_only_expat() -> None:
    # feedparser 6.0.14 api.py: PREFERRED_XML_PARSERS = ["drv_libxml2"] is tried first by xml.sax.make_parser.
    # With Debian's libxml2 bindings installed that driver reads local files named by entities and fetches
    # remote ones. Name this module instead: its create_parser gives the stdlib's expat driver (text buffered),
    # so make_parser never reaches the fallback list (which PY_SAX_PARSER could change). Python's expatreader
    # leaves feature_external_ges off (3.7.1+, and feedparser sets it to 0 too): its external_entity_ref handler
    # returns without opening anything.
    feedparser.api.PREFERRED_XML_PARSERS = [__name__]
    try:
        xml.sax.make_parser(feedparser.api.PREFERRED_XML_PARSERS).setFeature(xml.sax.handler.feature_external_ges, 0)
    except (ImportError, xml.sax.SAXException):
        # No pyexpat in this Python: use feedparser's loose parser for everything rather than some other driver.
        feedparser.api._XML_AVAILABLE = False


class _BufferedExpatReader(xml.sax.expatreader.ExpatParser):
    """Python's expat driver with expat's text buffering on.

    Unbuffered, expat reports character data in pieces, split at every entity reference and buffer edge, and
    escaped HTML in `content:encoded` is mostly entity references: ~9 bytes a call, 600,000 calls of feedparser's
    Python handler for 100 real feeds. Buffered, one call per text run: the same entries, 25% less parse CPU.
    """

    def reset(self) -> None:
        super().reset()
        expat = self._parser  # type: ignore[attr-defined]  # the pyexpat parser reset() has just made
        expat.buffer_text = True
        expat.buffer_size = 1 << 20


def create_parser() -> xml.sax.xmlreader.XMLReader:
    """What xml.sax.make_parser calls on a module named in feedparser's PREFERRED_XML_PARSERS."""
    return _BufferedExpatReader()


_use_only_expat()


def parse_feed(
    fetched: FetchedFeed,
    *,
    max_entries: int = 200,
    max_field_chars: int = 100_000,
    max_bytes: int = MAX_FEED_BYTES,
) -> ParsedFeed:
    """Parse a fetched body into entries; raise ParseError when it yields no feed at all.

    A feed with recoverable errors still yields its entries, and the problem becomes `warning`.
    Entries keep feed order; beyond `max_entries` the newest (by date) are kept.
    """
    if not (content := fetched.content).strip():
        raise ParseError("not a feed: the body is empty")
    if len(content) > max_bytes:
        raise ParseError(f"feed body of {len(content):,} bytes exceeds the {max_bytes:,}-byte limit")
    headers = {k.lower(): v for k, v in fetched.headers.items()}
    if jsonfeed.looks_like_json(content):
        return _from_json_feed(jsonfeed.read_json_feed(content), fetched.url, max_entries, max_field_chars)

    data, warnings = _to_utf8(content, headers)
    _refuse_entity_declarations(data)
    data = _repair_characters(data)
    try:
        # Always a stream: given bytes, feedparser 6.0.14 first tries open(bytes) as a file name, so a body
        # that happens to be a path (b"/etc/passwd") would be read from disk. The body is UTF-8 now, so we
        # say so; no content-location either: with it the loose parser resolves a bare <guid> against it and
        # the strict one does not, and an id must not depend on which parser ran.
        result = feedparser.parse(
            io.BytesIO(data),
            response_headers={"content-type": "application/xml; charset=utf-8"},
            # We keep plain text only (html_to_text drops scripts), so feedparser's HTML passes are wasted work.
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as e:  # e.g. ValueError from chr() on an out-of-range character reference
        raise ParseError(f"feedparser failed: {_describe(e)}") from e

    if result.get("bozo"):
        warnings.append(_describe(result.get("bozo_exception")))
    if not result.entries and not result.get("version"):
        raise ParseError(_not_a_feed(content, headers, result.get("bozo_exception")))

    raws = [_raw_from_feedparser(e) for e in result.entries]
    feed = result.feed
    return ParsedFeed(
        title=field_text(feed.get("title", ""), _detail_type(feed, "title"), max_field_chars, one_line=True),
        link=safe_link(feed.get("link"), fetched.url),
        entries=_entries(raws, fetched.url, max_entries, max_field_chars),
        warning="; ".join(w for w in warnings if w)[:300] or None,
    )


# --- one shape for every format ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Raw:
    """An entry as the feed wrote it, before normalisation. Text fields carry their type (html or plain)."""

    guid: str | None
    link: str | None
    title: tuple[str, str]
    summary: tuple[str, str]
    content: tuple[str, str]
    author: str
    published: datetime | None
    updated: datetime | None


def _raw_from_feedparser(e: dict) -> _Raw:
    # RSS 2.0 <description> and content:encoded, Atom <content>: keep the longest, the "fullest" text.
    contents = [c for c in e.get("content") or [] if isinstance(c.get("value"), str)]
    best = max(contents, key=lambda c: len(c["value"]), default=None)
    return _Raw(
        guid=e.get("id"),
        link=e.get("link"),
        title=(e.get("title") or "", _detail_type(e, "title")),
        summary=(e.get("summary") or "", _detail_type(e, "summary")),
        content=(best["value"], best.get("type") or "text/html") if best else ("", "text/plain"),
        author=e.get("author") or "",
        # dict.get, not e.get: feedparser's dict answers "updated_parsed" with published_parsed when absent.
        published=_from_struct(dict.get(e, "published_parsed")),
        updated=_from_struct(dict.get(e, "updated_parsed")),
    )


def _from_json_feed(doc: jsonfeed.JsonFeed, feed_url: str, max_entries: int, max_chars: int) -> ParsedFeed:
    raws = [
        _Raw(
            guid=it.id,
            # 1.1: url is the item's permalink; external_url the page it talks about. Either is an article.
            link=it.url if safe_link(it.url, feed_url) else it.external_url,
            title=(it.title, "text/plain"),  # 1.1: title is plain text
            summary=(it.summary, "text/plain"),  # 1.1: summary is "a plain text sentence or two"
            content=(it.content_html, "text/html") if it.content_html else (it.content_text, "text/plain"),
            author=it.author,
            published=_bounded(it.published),
            updated=_bounded(it.updated),
        )
        for it in doc.items
    ]
    return ParsedFeed(
        title=field_text(doc.title, "text/plain", max_chars, one_line=True),
        link=safe_link(doc.home_page_url, feed_url),
        entries=_entries(raws, feed_url, max_entries, max_chars),
    )


def _entries(raws: list[_Raw], feed_url: str, max_entries: int, max_chars: int) -> tuple[Entry, ...]:
    if len(raws) > max_entries:
        # Keep the newest; undated entries count as oldest, ties keep feed order (sorted() is stable).
        # Then restore feed order, which is the order the publisher meant.
        newest = sorted(range(len(raws)), key=lambda i: _sort_key(raws[i]), reverse=True)[:max_entries]
        raws = [raws[i] for i in sorted(newest)]
    return tuple(_entry(r, feed_url, max_chars) for r in raws)


def _sort_key(r: _Raw) -> tuple[int, float]:
    when = r.published or r.updated
    return (1, when.timestamp()) if when else (0, 0.0)


def _entry(r: _Raw, feed_url: str, max_chars: int) -> Entry:
    title = field_text(*r.title, max_chars, one_line=True)
    # Atom 1.0 requires <updated> and makes <published> optional; RSS 1.0 has only dc:date (feedparser files
    # it as updated). Either is the best publication date such feeds give.
    published = r.published or r.updated
    link = safe_link(r.link, feed_url)
    return Entry(
        feed_url=feed_url,
        entry_id=_entry_id(r, title, published),
        url=canonical_url(link),
        link=link,
        title=title,
        summary=field_text(*r.summary, max_chars),
        content=field_text(*r.content, max_chars),
        author=field_text(r.author, "text/plain", min(max_chars, 1000), one_line=True),
        published_at=published,
        updated_at=r.updated,
    )


def _entry_id(r: _Raw, title: str, published: datetime | None) -> str:
    """A key that stays the same across polls; each kind has its prefix so a guid never equals a link id.

    RSS 2.0: <guid> is optional; fall back to <link>, as given (not resolved against the feed URL, so a feed
    that moves keeps its ids), and for items with neither, a hash of title and date. Long values are hashed.
    """
    for kind, value in (("id", r.guid), ("link", r.link)):
        if value := clean_text(value or "").strip():
            return f"{kind}:{value}" if len(value) <= _MAX_ID_CHARS else f"{kind}-sha256:{_sha256(value)}"
    material = f"{title}\x1f{published.isoformat() if published else ''}"
    if material == "\x1f":  # no title, no date: the text is all there is
        material += clean_text(r.summary[0] or r.content[0])[:10_000]
    return "hash:" + _sha256(material)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- dates ---------------------------------------------------------------------------------------------------


def _from_struct(st: time.struct_time | None) -> datetime | None:
    # feedparser's *_parsed values are struct_time already converted to UTC (its datetimes/ handlers).
    try:
        return _bounded(datetime(*st[:6], tzinfo=UTC)) if st else None
    except (TypeError, ValueError, OverflowError):
        return None


def _bounded(when: datetime | None) -> datetime | None:
    if when is None or not _MIN_YEAR <= when.year <= _MAX_YEAR:
        return None
    return when


# --- encodings and entity declarations ----------------------------------------------------------------------

_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.I)


def _to_utf8(content: bytes, headers: dict[str, str]) -> tuple[bytes, list[str]]:
    """Decode with feedparser's own rules (RFC 3023, BOM, XML declaration) and return UTF-8 and warnings.

    Done before feedparser.parse so the entity check below reads exactly the text the XML parser will read:
    feedparser decodes with any codec Python has, and a body declaring encoding="utf-7" or "unicode_escape"
    hides `<!ENTITY` from a check on the raw bytes (verified with 6.0.14).
    """
    warnings: list[str] = []
    if content[:2] not in (b"\xff\xfe", b"\xfe\xff") and _declared_charset(content, headers) in ("utf-8", "utf8"):
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            # XML 1.0 4.3.3 makes this fatal, and feedparser would then decode the whole feed as windows-1252
            # or iso-8859-2 (mojibake everywhere). Replacing the bad bytes keeps all the good text.
            content = content.decode("utf-8", "replace").encode("utf-8")
            warnings.append("invalid UTF-8 bytes replaced")
    info: dict = {}
    try:
        data = feedparser.encodings.convert_to_utf8(headers, content, info)
    except Exception as e:  # e.g. lone surrogates produced by a unicode_escape body cannot be encoded
        raise ParseError(f"cannot decode the feed: {_describe(e)}") from e
    if info.get("bozo_exception") is not None:
        warnings.append(_describe(info["bozo_exception"]))
    return data, warnings


# XML 1.0 section 2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
_RAW_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # never part of a UTF-8 multi-byte sequence
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def _repair_characters(data: bytes) -> bytes:
    """Drop control characters XML forbids and neutralise character references to non-characters.

    Either makes expat give up and feedparser fall back to its loose parser, and there `&#xD800;` raises
    UnicodeEncodeError and `&#x110000;` ValueError, failing the whole feed for one bad title.
    """
    return _CHAR_REF.sub(_check_char_ref, _RAW_CONTROLS.sub(b"", data))


def _check_char_ref(m: re.Match) -> bytes:
    digits = m.group(1) or m.group(2)
    if len(digits) > 7:  # beyond U+10FFFF whatever the digits; also spares int() a 5,000-digit string
        return b"&#xFFFD;"
    code = int(digits, 16 if m.group(1) else 10)
    if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF:
        return m.group(0)
    return b"" if code < 0x20 else b"&#xFFFD;"


def _declared_charset(content: bytes, headers: dict[str, str]) -> str:
    if m := _CHARSET_PARAM.search(headers.get("content-type", "")):  # RFC 3023: the HTTP charset wins
        return m.group(1).lower()
    declared = _XML_DECL_ENCODING.match(content.removeprefix(b"\xef\xbb\xbf")[:300])
    return declared.group(1).decode("ascii").lower() if declared else ""


# The prolog: XML declaration, processing instructions, comments, whitespace, then maybe a DOCTYPE.
_PROLOG_ITEM = re.compile(rb"\s*+(?:<\?.*?\?>|<!--.*?-->)", re.S)
# A DOCTYPE up to its internal subset `[` or its end `>`; quoted system ids may contain either. Possessive,
# one character per step: linear time on any input.
_DOCTYPE = re.compile(rb"""\s*+<!DOCTYPE(?:[^"'\[>]|"[^"]*+"|'[^']*+')*+([\[>]?)""", re.I)
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)
_FIRST_ELEMENT = re.compile(rb"<\w")
_ENTITY_REFUSAL = "refused: the document declares XML entities (billion laughs / external entity risk)"


def _refuse_entity_declarations(data: bytes) -> None:
    """Refuse a document that declares entities, before any parser sees it.

    Entity declarations are how billion laughs and external entities (XXE) work, and feedparser's loose
    parser re-expands "safe" ones without limit (33 KB became an 18 MB summary here). News feeds do not
    declare entities; the RSS 0.91 Netscape DOCTYPE is a plain external id and passes. Two views are checked:
    expat's (a well-formed prolog whose DOCTYPE has an internal subset) and feedparser's (replace_doctype
    collects `<!ENTITY` from everything before the first `<letter`, even when that is inside a comment).
    """
    first_element = _FIRST_ELEMENT.search(data)
    if _ENTITY_DECL.search(data, 0, first_element.start() if first_element else len(data)):
        raise ParseError(_ENTITY_REFUSAL)
    pos = 0
    while True:
        if m := _PROLOG_ITEM.match(data, pos):
            pos = m.end()
        elif m := _DOCTYPE.match(data, pos):
            if m.group(1) == b"[" and _ENTITY_DECL.search(data, m.end()):
                raise ParseError(_ENTITY_REFUSAL)
            if m.group(1) != b">":
                return  # an internal subset without entities, or an unterminated DOCTYPE
            pos = m.end()
        else:
            return  # the root element, or text expat will refuse before it reads any DTD


def _not_a_feed(content: bytes, headers: dict[str, str], exc: object) -> str:
    head = content[:2048].lower()
    ctype = headers.get("content-type", "").split(";")[0].strip()
    if b"<html" in head or b"<!doctype html" in head or ctype in ("text/html", "application/xhtml+xml"):
        return f"not a feed: the body is an HTML page (content-type {ctype or 'not given'})"
    return f"not a feed: no RSS, Atom or JSON Feed found ({_describe(exc) or 'no feed elements'})"


def _describe(exc: object) -> str:
    return "" if exc is None else clean_text(f"{type(exc).__name__}: {exc}")[:200]


def _detail_type(d: dict, key: str) -> str:
    detail = d.get(f"{key}_detail") or {}
    return detail.get("type") or "text/html"
