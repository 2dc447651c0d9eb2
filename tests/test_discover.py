"""Feed discovery on pages we wrote, served by the local site: link tags, relative links, several feeds on a page,
the usual paths as a fallback, and the address guard still in force."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers.localsite import redirect_to
from watcher.config import FetchSettings
from watcher.discover import COMMON_PATHS, FeedLink, discover_feed, find_feed_links, guess_paths
from watcher.errors import FetchError, ParseError
from watcher.fetch import Fetcher

FIXTURES = Path(__file__).parent / "fixtures"
PAGES = FIXTURES / "discovery"
LOCAL = FetchSettings(allow_networks=("127.0.0.0/8",), timeout=timedelta(seconds=5))


def feed_body(site, name: str) -> bytes:
    return (FIXTURES / "site" / name).read_bytes().replace(b"{base}", site.url("").encode())


def serve(site, path: str, fixture: str, content_type: str) -> str:
    body = feed_body(site, fixture) if fixture.endswith((".rss", ".atom", ".json")) else (PAGES / fixture).read_bytes()
    return site.add(path, body, content_type=content_type)


async def discover(url: str, **kw):
    async with Fetcher(LOCAL) as fetcher:
        return await discover_feed(fetcher, url, **kw)


# --- link tags, read from markup alone ---------------------------------------------------------------------------


def test_link_tags_are_found_in_page_order_resolved_and_deduplicated():
    links = find_feed_links((PAGES / "links.html").read_bytes(), "http://news.example/blog/index.html")
    assert links == (
        FeedLink("http://news.example/feeds/world.rss", "World Desk » Feed", "application/rss+xml"),
        FeedLink("http://news.example/blog/asia.atom", "Asia (Atom)", "application/atom+xml"),
        FeedLink("http://news.example/feed.json", "JSON Feed", "application/feed+json"),
    )  # stylesheets, hreflang alternates and oEmbed are not feeds; the repeated feed is listed once


@pytest.mark.parametrize(
    "markup, expected",
    [
        ('<link rel="alternate" type="application/rss+xml" href="/rss">', ["http://s.example/rss"]),
        ("<link rel=alternate type=application/atom+xml href=atom.xml>", ["http://s.example/dir/atom.xml"]),
        (
            '<LINK REL="ALTERNATE" TYPE="Application/RSS+XML; charset=utf-8" HREF="//cdn.example/f">',
            ["http://cdn.example/f"],
        ),
        ('<link rel="feed" href="/all">', ["http://s.example/all"]),
        ('<link rel="alternate" type="application/json" href="/feed.json">', ["http://s.example/feed.json"]),
        ('<link rel="alternate" type="text/html" href="/print">', []),
        ('<link rel="alternate" type="application/rss+xml">', []),
        ('<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">', []),
        ('<link rel="alternate" type="application/rss+xml" href="file:///etc/passwd">', []),
        (
            '<base href="https://other.example/x/"><link rel="alternate" type="application/rss+xml" href="f.xml">',
            ["https://other.example/x/f.xml"],
        ),
        ('<link rel="alternate" type="application/rss+xml" href=" /spaced \n">', ["http://s.example/spaced"]),
        ("<html><head><link rel='alternate' type='application/rss+xml' href='/a'", []),  # cut off mid-tag
        ("\x00\xff<<<>>>", []),
    ],
    ids=[
        "absolute-path",
        "unquoted",
        "upper-case-params-protocol-relative",
        "rel-feed",
        "json",
        "html-alternate",
        "no-href",
        "javascript",
        "file",
        "base-href",
        "whitespace",
        "truncated",
        "garbage",
    ],
)
def test_link_tag_cases(markup, expected):
    links = find_feed_links(markup.encode("utf-8", "surrogateescape"), "http://s.example/dir/page.html")
    assert [link.url for link in links] == expected


def test_the_page_charset_is_honoured_for_titles():
    page = '<meta charset="windows-1251"><link rel="alternate" type="application/rss+xml" title="Новости" href="/rss">'
    links = find_feed_links(page.encode("windows-1251"), "http://s.example/")
    assert links[0].title == "Новости"


def test_usual_paths_are_tried_below_the_page_first_then_at_the_root():
    paths = guess_paths("http://s.example/blog/post.html")
    assert paths[: len(COMMON_PATHS)] == [f"http://s.example/blog/{p}" for p in COMMON_PATHS]
    assert paths[len(COMMON_PATHS) :] == [f"http://s.example/{p}" for p in COMMON_PATHS]
    assert guess_paths("http://s.example/") == [f"http://s.example/{p}" for p in COMMON_PATHS]


# --- discovery over HTTP ----------------------------------------------------------------------------------------


async def test_a_feed_address_is_taken_as_it_is(site):
    url = serve(site, "/feeds/world.rss", "world.rss", "application/rss+xml")
    found = await discover(url)
    assert (found.url, found.title, found.found_by, found.entries) == (url, "Test World Desk", "feed", 3)
    assert len(site.requests) == 1


async def test_a_page_leads_to_the_first_feed_it_announces_with_relative_links_resolved(site):
    page = serve(site, "/blog/index.html", "links.html", "text/html; charset=utf-8")
    serve(site, "/feeds/world.rss", "world.rss", "application/rss+xml")
    serve(site, "/blog/asia.atom", "asia.atom", "application/atom+xml")
    serve(site, "/feed.json", "feed.json", "application/feed+json")
    found = await discover(page)
    assert (found.url, found.found_by, found.title) == (site.url("/feeds/world.rss"), "link", "Test World Desk")
    assert [link.url for link in found.links] == [
        site.url("/feeds/world.rss"),
        site.url("/blog/asia.atom"),
        site.url("/feed.json"),
    ]
    assert [r.path for r in site.requests] == [
        "/blog/index.html",
        "/feeds/world.rss",
    ]  # the others are listed, not fetched


@pytest.mark.parametrize(
    "pick, path, title", [(2, "/blog/asia.atom", "Test Asia Desk"), (3, "/feed.json", "Test JSON Desk")]
)
async def test_pick_chooses_another_feed_of_the_page(site, pick, path, title):
    page = serve(site, "/blog/index.html", "links.html", "text/html")
    serve(site, "/blog/asia.atom", "asia.atom", "application/atom+xml")
    serve(site, "/feed.json", "feed.json", "application/feed+json")
    found = await discover(page, pick=pick)
    assert (found.url, found.title, found.found_by) == (site.url(path), title, "link")


async def test_when_the_first_announced_feed_is_broken_the_next_one_is_taken(site):
    page = serve(site, "/news/index.html", "several.html", "text/html")
    serve(site, "/news/asia.atom", "asia.atom", "application/atom+xml")
    serve(site, "/news/world.rss", "world.rss", "application/rss+xml")
    found = await discover(page)  # /news/gone.rss answers 404
    assert found.url == site.url("/news/asia.atom")
    assert [link.title for link in found.links] == ["Gone", "Asia", "World"]  # javascript: is never listed
    assert [r.path for r in site.requests] == ["/news/index.html", "/news/gone.rss", "/news/asia.atom"]


async def test_pick_beyond_the_page_s_feeds_is_an_error(site):
    page = serve(site, "/news/index.html", "several.html", "text/html")
    with pytest.raises(ParseError, match="announces 3 feed"):
        await discover(page, pick=4)


async def test_a_picked_feed_that_does_not_parse_is_an_error_not_a_fallback(site):
    page = serve(site, "/news/index.html", "several.html", "text/html")
    with pytest.raises(ParseError, match="feed number 1 of the page"):
        await discover(page, pick=1)


@pytest.mark.parametrize("feed_path", ["/blog/feed", "/blog/index.xml", "/atom.xml", "/feeds/posts/default"])
async def test_a_page_without_link_tags_falls_back_to_the_usual_paths(site, feed_path):
    page = serve(site, "/blog/hello.html", "nolinks.html", "text/html")
    site.add(feed_path, feed_body(site, "world.rss"), content_type="application/rss+xml")
    found = await discover(page)
    assert (found.url, found.found_by, found.links) == (site.url(feed_path), "path", ())


async def test_html_at_a_usual_path_is_not_mistaken_for_a_feed(site):
    page = serve(site, "/hello.html", "nolinks.html", "text/html")
    site.add(
        "/feed", (PAGES / "nolinks.html").read_bytes(), content_type="text/html"
    )  # a CMS answering 200 with a page
    site.add("/rss.xml", feed_body(site, "world.rss"), content_type="text/xml")
    found = await discover(page)
    assert found.url == site.url("/rss.xml")


async def test_no_feed_anywhere_says_what_was_tried(site):
    page = serve(site, "/hello.html", "nolinks.html", "text/html")
    with pytest.raises(ParseError, match=r"announces no feed, and none of 9 usual paths"):
        await discover(page)
    assert {r.path for r in site.requests} == {"/hello.html"} | {f"/{p}" for p in COMMON_PATHS}


async def test_relative_links_resolve_against_the_page_reached_after_a_redirect(site):
    site.add("/old-home", handler=redirect_to(site.url("/blog/index.html")))
    serve(site, "/blog/index.html", "links.html", "text/html")
    serve(site, "/blog/asia.atom", "asia.atom", "application/atom+xml")
    found = await discover(site.url("/old-home"), pick=2)
    assert found.url == site.url("/blog/asia.atom")


async def test_a_feed_that_moved_for_good_is_added_at_its_new_address(site):
    new = serve(site, "/new/world.rss", "world.rss", "application/rss+xml")
    site.add("/world.rss", handler=redirect_to(new, 301))
    assert (await discover(site.url("/world.rss"))).url == new


async def test_an_unreachable_page_is_a_fetch_error_that_names_the_address(site):
    with pytest.raises(FetchError) as caught:
        await discover(site.url("/nothing-here"))
    assert caught.value.message == f"{site.url('/nothing-here')}: HTTP 404 Not Found"


async def test_when_no_announced_feed_can_be_read_the_reason_of_each_is_given(site, monkeypatch):
    import socket

    from watcher import guard

    async def no_dns(host: str, port: int) -> list[str]:  # an offline machine: every name fails to resolve
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(guard, "_system_resolve", no_dns)
    page = site.add(
        "/home.html",
        '<html><head><link rel="alternate" type="application/rss+xml" href="https://cdn.example.test/rss">'
        '<link rel="alternate" type="application/atom+xml" href="/gone.atom"></head></html>',
        content_type="text/html",
    )
    with pytest.raises(ParseError) as caught:
        await discover(page)
    message = str(caught.value)
    assert "the page announces 2 feed(s), none readable" in message
    assert "https://cdn.example.test/rss: cannot resolve cdn.example.test (Temporary failure" in message
    assert f"{site.url('/gone.atom')}: HTTP 404 Not Found" in message


async def test_the_address_guard_still_applies(site):
    serve(site, "/feeds/world.rss", "world.rss", "application/rss+xml")
    async with Fetcher(FetchSettings()) as fetcher:  # no allow_networks: loopback is refused
        with pytest.raises(FetchError) as caught:
            await discover_feed(fetcher, site.url("/feeds/world.rss"))
    assert caught.value.kind == "blocked"
    assert site.connections == 0
