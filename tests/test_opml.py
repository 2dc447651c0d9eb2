"""OPML in and out: nested folders read, names from title or text, and round trips that keep the nesting."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.errors import ParseError
from watcher.opml import OpmlFeed, read_opml, write_opml

OPML = Path(__file__).parent / "fixtures" / "opml"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_nested_outlines_are_read_in_order_with_their_folders():
    feeds = read_opml((OPML / "nested.opml").read_bytes())
    assert [(f.name, f.url, f.folder) for f in feeds] == [
        ("Top-level Wire", "https://wire.example/rss.xml", ""),
        ("Yonhap (English)", "https://en.yna.co.kr/RSS/news.xml", "News/Korea"),  # title wins over text
        ("NK News", "https://www.nknews.org/feed/", "News/Korea"),
        ("Meduza", "https://meduza.io/rss/en/all", "News/Russia & Ukraine"),
        ("Kyiv Independent", "https://kyivindependent.com/rss/", "News/Russia & Ukraine"),
        ("The War Zone", "https://www.twz.com/feed", "Defence"),
        ("Same feed, second folder", "https://www.nknews.org/feed/", "Defence"),  # duplicates are import's business
        ("untitled.example", "https://untitled.example/feed", "Defence"),  # no title or text: the host
    ]  # file:///etc/passwd is not a web feed and is left out; the empty folder yields nothing
    assert feeds[0].html_url == "https://wire.example/"


def test_an_opml_1_file_in_latin_1_is_read():
    feeds = read_opml((OPML / "flat_opml1.opml").read_bytes())
    assert [f.name for f in feeds] == ["Le Monde", "Café Babel"]


def test_the_fixture_round_trips_with_its_nesting():
    feeds = read_opml((OPML / "nested.opml").read_bytes())
    again = read_opml(write_opml(feeds, title="t", now=NOW).encode("utf-8"))
    assert again == feeds


@pytest.mark.parametrize(
    "feeds",
    [
        (),
        (OpmlFeed("A & B <news>", "https://a.example/feed?x=1&y=2"),),
        (
            OpmlFeed("Quotes \"and\" 'apostrophes'", "https://q.example/rss"),
            OpmlFeed("Кириллица 한국어", "https://k.example/atom.xml"),
        ),
        (
            OpmlFeed("deep", "https://d.example/1", "a/b/c"),
            OpmlFeed("top", "https://d.example/2"),
            OpmlFeed("sibling", "https://d.example/3", "a/b"),
            OpmlFeed("other", "https://d.example/4", "z", html_url="https://d.example/"),
        ),
    ],
    ids=["empty", "markup-in-names", "quotes-and-scripts", "nested-folders"],
)
def test_write_then_read_gives_the_same_feeds(feeds):
    text = write_opml(feeds, title="watcher feeds", now=NOW)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    assert "<dateCreated>Thu, 26 Nov 2026 12:00:00 +0000</dateCreated>" in text
    assert set(read_opml(text.encode("utf-8"))) == set(feeds)


def test_folders_become_nested_outlines():
    text = write_opml([OpmlFeed("x", "https://x.example/f", "News/Korea")], title="t", now=NOW)
    assert (
        '<outline text="News" title="News">\n      <outline text="Korea" title="Korea">\n        <outline type="rss"'
        in text
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ((OPML / "entities.opml").read_bytes(), "declares XML entities"),
        (b"<rss version='2.0'><channel/></rss>", "root element is <rss>"),
        (b"<opml version='2.0'><head/></opml>", "no <body>"),
        (b"<opml><body><outline", "not an OPML file"),
        (b"", "not an OPML file"),
    ],
    ids=["entities", "rss", "no-body", "truncated", "empty"],
)
def test_what_is_not_opml_is_refused_with_a_reason(data, message):
    with pytest.raises(ParseError, match=message):
        read_opml(data)
