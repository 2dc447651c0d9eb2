"""How stored values look on the page (pure): marked snippets, times in the configured zone, safe links, spans.

Feed text is hostile (docs/reliability.md): every string from a feed goes through the digest's cleaning
(`display_text`, `safe_url`) and Jinja2's autoescape; the [[ ]] marks become <mark> elements from segments,
never by pasting HTML.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from ..alerts.digest import format_time
from ..config_reader import parse_duration
from ..display import display_text, safe_url, split_marks
from ..store import from_db_time

SINCE_CHOICES = ("24h", "3d", "7d", "30d", "")  # "" is "any time"


def marked(snippet: str | None, limit: int = 600) -> Markup:
    """'a [[drone]] b' -> 'a <mark>drone</mark> b', every piece escaped."""
    out = []
    for text, is_term in split_marks(display_text(snippet or "", limit)):
        out.append(Markup("<mark>{}</mark>").format(text) if is_term else escape(text))
    return Markup("").join(out)


def local_time(value: str | datetime | None, timezone: str) -> str:
    """A stored UTC time as '2026-12-06 14:05 KST' in the config's zone; '' when there is none."""
    when = from_db_time(value) if isinstance(value, str) else value
    return format_time(when, timezone) if when else ""


def json_list(value: str | None) -> list[str]:
    """The stored JSON lists (terms, feeds) as display strings; a malformed one is shown as nothing."""
    try:
        items = json.loads(value or "[]")
    except ValueError:
        return []
    return [display_text(x, 80) for x in items if isinstance(x, str)] if isinstance(items, list) else []


def link(url: str | None) -> str | None:
    return safe_url(url)


def since_of(text: str | None, now: datetime) -> datetime | None:
    """'7d' -> now - 7 days; '' or None -> None. Raises ValueError on a malformed duration."""
    if not text:
        return None
    span = parse_duration(text)
    return now - span if span > timedelta(0) else None


def paragraphs(body: str, limit: int = 200_000) -> list[str]:
    """An article's stored text as paragraphs for display (blank lines split them)."""
    text = body[:limit]
    return [display_text(p) for p in text.split("\n\n") if p.strip()] or ([display_text(text)] if text else [])


def rule_error_spans(rule: str, position: int | None) -> tuple[str, str, str]:
    """The rule split around the error position: (before, at, after), for the caret display without script."""
    if position is None or position < 0:
        return rule, "", ""
    position = min(position, len(rule))
    return rule[:position], rule[position : position + 1] or " ", rule[position + 1 :]
