"""JSON Feed 1.0/1.1 (https://www.jsonfeed.org/version/1.1/) -> plain items, read with the stdlib json module.

parse.py owns normalisation (ids, links, text, date bounds) for every format, so this module only reads the
document, checks its shape and types, and hands back raw values. It imports nothing from watcher but errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from watcher.errors import ParseError

_VERSION_MARK = "jsonfeed.org/version/"


@dataclass(frozen=True, slots=True)
class JsonFeedItem:
    id: str | None
    url: str | None
    external_url: str | None
    title: str
    content_html: str
    content_text: str
    summary: str
    author: str
    published: datetime | None
    updated: datetime | None


@dataclass(frozen=True, slots=True)
class JsonFeed:
    title: str
    home_page_url: str | None
    items: tuple[JsonFeedItem, ...]


def looks_like_json(content: bytes) -> bool:
    """A body whose first non-blank byte is `{`: no XML feed starts that way, whatever its content-type says."""
    head = content[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def read_json_feed(content: bytes) -> JsonFeed:
    # JSON Feed 1.1: "JSON Feed files must be served using the same MIME type and encoding as JSON (UTF-8)".
    # Invalid bytes become U+FFFD instead of losing the whole feed.
    text = content.decode("utf-8", "replace").lstrip("\ufeff")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly nested arrays; ValueError: >4300-digit ints
        raise ParseError(f"not a feed: invalid JSON ({_short(e)})") from e
    if not isinstance(doc, dict) or _VERSION_MARK not in str(doc.get("version", "")):
        raise ParseError("not a feed: a JSON document without a jsonfeed.org version")
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):  # 1.1: items (array, required)
        raise ParseError("JSON Feed without an items array")
    items = tuple(_item(it) for it in raw_items if isinstance(it, dict))
    return JsonFeed(title=_str(doc.get("title")) or "", home_page_url=_str(doc.get("home_page_url")), items=items)


def _item(it: dict) -> JsonFeedItem:
    raw_id = it.get("id")
    # 1.1: "If an id is presented as a number or other type, a JSON Feed reader must coerce it to a string."
    item_id = None if raw_id is None or isinstance(raw_id, (dict, list)) else str(raw_id)
    return JsonFeedItem(
        id=item_id,
        url=_str(it.get("url")),
        external_url=_str(it.get("external_url")),
        title=_str(it.get("title")) or "",
        content_html=_str(it.get("content_html")) or "",
        content_text=_str(it.get("content_text")) or "",
        summary=_str(it.get("summary")) or "",
        author=_authors(it),
        published=_rfc3339(it.get("date_published")),
        updated=_rfc3339(it.get("date_modified")),
    )


def _authors(it: dict) -> str:
    # 1.1 has `authors` (array of objects); 1.0 had a single `author` object, which 1.1 readers should still read.
    found = it.get("authors")
    objs = found if isinstance(found, list) else [it.get("author")]
    names = [_str(a.get("name")) for a in objs if isinstance(a, dict)]
    return ", ".join(n for n in names if n)


def _rfc3339(value: object) -> datetime | None:
    """1.1: dates are RFC 3339. fromisoformat (3.11) reads that profile, `Z` included; naive times are taken as UTC."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 or 9999 pushed past the range by the offset
        return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _short(e: Exception) -> str:
    return str(e)[:120]
