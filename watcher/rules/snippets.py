"""Why an article matched, in words: the terms as they appear in the text, and a snippet with them marked [[so]].

Only articles that match work these out (topics.py), so their cost is paid on matches, not on every article.
"""

from __future__ import annotations

import re

from .text import ArticleText, word_offsets

SNIPPET_CHARS = 240  # the window of text around the hits, before the [[marks]] and the ellipses
MAX_TERMS = 20


class _Offsets:
    """Character offsets of each word position, computed only for articles that match."""

    def __init__(self, art: ArticleText):
        self.art = art
        self.title = word_offsets(art.title)
        self.body = word_offsets(art.body)

    def locate(self, start: int, end: int) -> tuple[int, int, int]:
        """word positions -> (field, first char, last char + 1); field 0 is the title, 1 the body."""
        t = self.art.title_end
        if start < t:
            return 0, self.title[start][0], self.title[min(end, len(self.title) - 1)][1]
        return 1, self.body[start - t][0], self.body[min(end - t, len(self.body) - 1)][1]

    def text(self, field: int) -> str:
        return self.art.title if field == 0 else self.art.body


def _offsets(art: ArticleText) -> _Offsets:
    """One _Offsets per article, however many topics it matches."""
    found = art.memo.get("offsets")
    if found is None:
        found = art.memo["offsets"] = _Offsets(art)
    return found


def _positive(hits) -> list:
    return sorted({h for h in hits if h[0].weight >= 0}, key=lambda h: (h[1], h[2]))


def surface_terms(art: ArticleText, hits, offsets: _Offsets | None = None) -> tuple[str, ...]:
    offsets = offsets or _offsets(art)
    seen: dict[str, str] = {}
    for _, s, e in _positive(hits):
        field, a, b = offsets.locate(s, e)
        found = " ".join(offsets.text(field)[a:b].split())
        seen.setdefault(found.casefold(), found)
    return tuple(seen.values())[:MAX_TERMS]


def terms_and_snippet(art: ArticleText, hits) -> tuple[tuple[str, ...], str]:
    """The terms as found in the text, and a snippet of ~240 characters around the best hits, marked [[so]]."""
    hits = _positive(hits)
    if not hits:
        return (), ""
    offsets = _offsets(art)
    terms = surface_terms(art, hits, offsets)
    located = [(offsets.locate(s, e), term) for term, s, e in hits]
    # The window with the most distinct terms; on a tie the body (more context than the title), then the earliest.
    best_key, field, start = (-1, 0, 0), 0, 0
    for (f, a, _), _term in located:
        window = max(0, a - SNIPPET_CHARS // 3)
        distinct = len({t for (g, x, y), t in located if g == f and x >= window and y <= window + SNIPPET_CHARS})
        if (distinct, f, -window) > best_key:
            best_key, field, start = (distinct, f, -window), f, window
    text = offsets.text(field)
    end = min(len(text), start + SNIPPET_CHARS)
    if start > 0:  # cut at word boundaries
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 30 else start
    if end < len(text):
        space = text.rfind(" ", end - 30, end)
        end = space if space > start else end
    marks = _merge([(a, b) for (f, a, b), _ in located if f == field and a >= start and b <= end])
    pieces, cursor = [], start
    for a, b in marks:
        pieces += [text[cursor:a], "[[", text[a:b], "]]"]
        cursor = b
    pieces.append(text[cursor:end])
    # A line break in the text (a headline above its first paragraph, paragraphs) stays visible as " · ": joined
    # by a space, "...Investigators Say" ran on into "When Western researchers..." as one sentence.
    snippet = re.sub(r"[^\S\n]+", " ", "".join(pieces)).strip()
    snippet = re.sub(r" ?\n[\s]*", " · ", snippet)
    return terms, ("…" if start > 0 else "") + snippet + ("…" if end < len(text) else "")


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
