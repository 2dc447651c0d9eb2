"""Article pages -> body text and metadata, with trafilatura (the only module that imports it).

`extract_text` runs in the worker processes of workers.py: extraction is the CPU ceiling of the whole pipeline
(~57 pages/s per core, measured), so the event loop never runs it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .models import Extracted
from .walls import page_wall

MIN_TEXT_CHARS = 40  # less is a menu or a cookie banner, not an article

_LANG_RE = re.compile(rb"<html[^>]*\slang=[\"']?([A-Za-z]{2,3})", re.IGNORECASE)


def extract_text(content: bytes, url: str) -> Extracted | None:
    """Run trafilatura on one page (in a worker process). None when the page has no main text."""
    import trafilatura  # imported in the worker; the parent never loads it

    # include_comments=False: trafilatura keeps reader comments by default, which we do not want in the body.
    document = trafilatura.bare_extraction(
        content, url=url, include_comments=False, include_tables=False, with_metadata=True, fast=True
    )
    if isinstance(document, dict):
        document = None  # bare_extraction returns a dict only with as_dict=True, which we never ask for
    text = (document.text or "").strip() if document is not None else ""
    # A consent wall, a paywall's teaser or a challenge answered with 200 is not the article (walls.py).
    wall = page_wall(content, text)
    if wall is not None:
        return Extracted(text=text, wall=wall[0], wall_sign=wall[1])
    if document is None or len(text) < MIN_TEXT_CHARS:
        return None
    lang = document.language or ""
    if not lang and (m := _LANG_RE.search(content[:4096])):
        lang = m.group(1).decode("ascii").lower()
    return Extracted(
        text=(document.text or "").strip(),
        title=(document.title or "").strip(),
        author=(document.author or "").strip(),
        published_at=_parse_date(document.date),
        language=lang,
    )


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if not 1970 <= parsed.year <= 2100:
        return None
    return parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)
