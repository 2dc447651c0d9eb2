"""fetch.py and guard.py against a real HTTP server on loopback: the happy path and every hostile input we know.

Every test talks only to 127.0.0.0/8 or ::1. Names that must "resolve" go through a fake resolver
(monkeypatched into guard.py), so no test sends a DNS query.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import logging
import select
import shutil
import socket
import ssl
import time
import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tests.helpers.localsite import InFlight, LocalSite, drip, hang, make_tls_files, redirect_to, reply, stream_forever
from watcher import guard
from watcher.body import decoded_page
from watcher.config import FetchSettings
from watcher.errors import BlockedAddressError, FetchError
from watcher.fetch import Fetcher, parse_retry_after
from watcher.guard import GuardedBackend, check_host, install_guard, literal_address, parse_networks, refusal
from watcher.models import FeedState, FetchedFeed, FetchedPage, NotModified
from watcher.text import redact_url

LOOPBACK = ("127.0.0.0/8",)
FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
NOW = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def settings(**overrides) -> FetchSettings:
    values = dict(
        allow_networks=LOOPBACK,
        timeout=timedelta(seconds=3),
        connect_timeout=timedelta(seconds=1),
        read_timeout=timedelta(seconds=2),
    )
    values.update(overrides)
    return FetchSettings(**values)


async def get_feed(target: str | FeedState, **overrides) -> FetchedFeed | NotModified:
    state = target if isinstance(target, FeedState) else FeedState(target)
    async with Fetcher(settings(**overrides)) as fetcher:
        return await fetcher.fetch_feed(state)


async def feed_error(target: str | FeedState, **overrides) -> FetchError:
    with pytest.raises(FetchError) as info:
        await get_feed(target, **overrides)
    return info.value


@pytest.fixture
def dns(monkeypatch):
    """A fake resolver: `dns["name"] = ["127.0.0.1"]`; `dns.calls` counts lookups. Unknown names fail."""

    class FakeDNS(dict):
        calls: list[str] = []

        async def resolve(self, host: str, port: int) -> list[str]:
            self.calls.append(host)
            answer = self.get(host)
            if answer is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            if isinstance(answer, BaseException):
                raise answer
            return answer(len(self.calls)) if callable(answer) else list(answer)

    fake = FakeDNS()
    fake.calls = []
    monkeypatch.setattr(guard, "_system_resolve", fake.resolve)
    return fake


# --- the happy path and conditional GET ----------------------------------------------------------------------


async def test_200_gives_body_validators_lowercased_headers_and_sends_our_headers(site):
    url = site.add("/feed.xml", FEED, headers={"X-Custom": "yes"})
    result = await get_feed(url, user_agent="watcher-test/1.0")
    assert isinstance(result, FetchedFeed)
    assert result.content == FEED and result.url == url
    assert result.etag and result.etag.startswith('"')
    assert result.last_modified == "Wed, 25 Nov 2026 10:00:00 GMT"
    assert result.headers["x-custom"] == "yes" and result.headers["content-type"] == "application/xml"
    assert all(k == k.lower() for k in result.headers)
    assert result.permanent_redirect is None and result.retry_after is None
    sent = site.requests_to("/feed.xml")[0].headers
    assert sent["user-agent"] == "watcher-test/1.0"
    assert sent["accept-encoding"] == "gzip, deflate"
    assert "if-none-match" not in sent and "cookie" not in sent


async def test_cookies_are_not_kept_between_requests(site):
    url = site.add("/feed.xml", handler=reply(200, FEED, {"set-cookie": "session=abc; Path=/"}))
    async with Fetcher(settings()) as fetcher:
        await fetcher.fetch_feed(FeedState(url))
        await fetcher.fetch_feed(FeedState(url))
    assert "cookie" not in site.requests[1].headers


@pytest.mark.parametrize("use_etag, use_last_modified", [(True, True), (True, False), (False, True)])
async def test_second_poll_with_validators_is_not_modified(site, use_etag, use_last_modified):
    url = site.add("/feed.xml", FEED)
    first = await get_feed(url)
    state = FeedState(url, first.etag if use_etag else None, first.last_modified if use_last_modified else None)
    second = await get_feed(state)
    assert isinstance(second, NotModified)
    assert second.url == url
    assert second.etag == first.etag  # the server's 304 carries it; when we did not send one, we learn it
    assert second.last_modified == (first.last_modified if use_last_modified else None)
    sent = site.requests_to("/feed.xml")[1].headers
    assert sent.get("if-none-match") == (first.etag if use_etag else None)
    assert sent.get("if-modified-since") == (first.last_modified if use_last_modified else None)


@pytest.mark.parametrize(
    "answer_headers, expected_etag",
    [({}, '"v1"'), ({"etag": '"v2"'}, '"v2"')],
    ids=["304-without-validators-keeps-ours", "304-with-new-etag"],
)
async def test_304_validators(site, answer_headers, expected_etag):
    url = site.add("/feed.xml", handler=reply(304, headers=answer_headers))
    result = await get_feed(FeedState(url, '"v1"', "Mon, 01 Jan 2024 00:00:00 GMT"))
    assert result == NotModified(url, expected_etag, "Mon, 01 Jan 2024 00:00:00 GMT")


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"cache-control": "max-age=3600"}, timedelta(hours=1)),
        ({"cache-control": 'public, MAX-AGE="600", must-revalidate'}, timedelta(minutes=10)),
        ({"retry-after": "300"}, timedelta(minutes=5)),
        ({"retry-after": "60", "cache-control": "max-age=120"}, timedelta(minutes=2)),  # the longer hint wins
        ({"cache-control": "max-age=99999999999"}, timedelta(days=1)),
        ({"cache-control": "no-cache"}, None),
        ({"cache-control": "max-age=soon"}, None),
    ],
)
@pytest.mark.parametrize("status", [200, 304])
async def test_cache_hint_from_200_and_304(site, headers, expected, status):
    url = site.add("/feed.xml", handler=reply(status, FEED if status == 200 else b"", headers))
    result = await get_feed(FeedState(url, '"v1"'))
    assert type(result) is (FetchedFeed if status == 200 else NotModified)
    assert result.retry_after == expected


async def test_fetch_page_returns_final_url_and_content_type(site):
    page = site.add("/article", b"<html><p>text</p></html>", content_type="text/html; charset=utf-8")
    start = site.add("/a", handler=redirect_to(page, 302))
    async with Fetcher(settings()) as fetcher:
        result = await fetcher.fetch_page(start)
    assert result == FetchedPage(
        page, b"<html><p>text</p></html>", "text/html; charset=utf-8", max_bytes=settings().max_page_bytes
    )
    assert "text/html" in site.requests_to("/article")[0].headers["accept"]


async def test_ipv6_loopback_server_when_allowed():
    try:
        site6 = LocalSite(host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        url = site6.add("/feed.xml", FEED)
        result = await get_feed(url, allow_networks=("::1/128",))
        assert result.content == FEED
    finally:
        site6.stop()


# --- encodings and size caps ---------------------------------------------------------------------------------


def _deflate(data: bytes, wbits: int) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return c.compress(data) + c.flush()


BIG = FEED * 2000  # ~170 KB: several network chunks and several 64 KB decode pieces


@pytest.mark.parametrize(
    "coding, encoded, expected",
    [
        ("", BIG, BIG),
        ("identity", BIG, BIG),
        ("gzip", gzip.compress(BIG), BIG),
        ("GZip", gzip.compress(BIG), BIG),
        ("x-gzip", gzip.compress(BIG), BIG),
        ("identity, gzip", gzip.compress(BIG), BIG),
        ("gzip", gzip.compress(FEED) + gzip.compress(FEED), FEED + FEED),  # RFC 1952: several members
        ("gzip", gzip.compress(FEED) + b"\0\0\0\0", FEED),  # padding after the member, seen from some servers
        ("deflate", _deflate(BIG, zlib.MAX_WBITS), BIG),  # RFC 9110: zlib-wrapped
        ("deflate", _deflate(BIG, -zlib.MAX_WBITS), BIG),  # what some servers send instead: raw deflate
        ("gzip", gzip.compress(b""), b""),
    ],
)
async def test_compressed_bodies_are_decoded(site, coding, encoded, expected):
    headers = {"content-type": "application/xml", **({"content-encoding": coding} if coding else {})}
    url = site.add("/feed.xml", handler=reply(200, encoded, headers))
    result = await get_feed(url)
    assert result.content == expected
    assert "content-encoding" not in result.headers and "content-length" not in result.headers


async def test_route_gzip_flag_is_decoded(site):
    url = site.add("/feed.xml", BIG, gzip=True)
    assert (await get_feed(url)).content == BIG


@pytest.mark.parametrize(
    "coding, encoded",
    [
        ("gzip, gzip", gzip.compress(gzip.compress(FEED))),
        ("gzip,deflate", _deflate(gzip.compress(FEED), zlib.MAX_WBITS)),
        ("br", b"\x0b\x02\x80hello\x03"),
        ("compress", b"\x1f\x9d\x90"),
        ("zstd", b"\x28\xb5\x2f\xfd"),
        ("gzip", b"this is not gzip at all"),
        ("deflate", b"\xff\xff\xff\xff not deflate"),
    ],
)
async def test_stacked_unknown_or_corrupt_encodings_refused(site, coding, encoded):
    url = site.add("/feed.xml", handler=reply(200, encoded, {"content-encoding": coding}))
    error = await feed_error(url)
    assert error.kind == "encoding"
    assert "gzip, gzip" not in coding or "stacked" in error.message


@pytest.mark.parametrize(
    "coding, encoded, kept",
    [
        ("gzip", gzip.compress(BIG), "gzip"),
        ("x-gzip", gzip.compress(BIG), "gzip"),
        ("deflate", _deflate(BIG, -zlib.MAX_WBITS), "deflate"),
        ("identity", BIG, ""),
    ],
)
async def test_a_page_arrives_still_compressed_and_decodes_in_the_worker_to_the_same_bytes(site, coding, encoded, kept):
    url = site.add("/page", handler=reply(200, encoded, {"content-type": "text/html", "content-encoding": coding}))
    async with Fetcher(settings()) as fetcher:
        page = await fetcher.fetch_page(url)
    assert page.content == encoded and page.content_encoding == kept  # not inflated in the event loop's process
    assert decoded_page(page) == BIG


@pytest.mark.parametrize(
    "coding, encoded",
    [("gzip, gzip", gzip.compress(gzip.compress(FEED))), ("br", b"\x0b\x02\x80hello\x03")],
)
async def test_a_page_with_a_stacked_or_unknown_coding_is_refused_by_the_fetcher(site, coding, encoded):
    url = site.add("/page", handler=reply(200, encoded, {"content-encoding": coding}))
    async with Fetcher(settings()) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch_page(url)
    assert info.value.kind == "encoding"


def test_a_corrupt_page_body_fails_to_decode_as_an_encoding_error():
    page = FetchedPage("https://news.example/p?token=s3cret", b"this is not gzip", content_encoding="gzip")
    with pytest.raises(FetchError) as info:
        decoded_page(page)
    assert info.value.kind == "encoding" and "s3cret" not in str(info.value)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """50 MB of zeros in ~50 KB of gzip, built without ever holding the 50 MB."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(2**20)
    return b"".join(c.compress(block) for _ in range(50)) + c.flush()


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_bomb_stopped_at_the_decoded_cap_without_materialising_it(site, gzip_bomb, coding):
    body = gzip_bomb if coding == "gzip" else _deflate(bytes(50 * 2**20), zlib.MAX_WBITS)
    assert len(body) < 200_000
    url = site.add("/feed.xml", handler=reply(200, body, {"content-encoding": coding}))
    tracemalloc.start()
    try:
        error = await feed_error(url, max_feed_bytes=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.kind == "too-large" and "1.0 MB" in error.message
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MB while refusing a bomb"


@pytest.mark.parametrize(
    "handler",
    [
        stream_forever(chunked=True),
        stream_forever(chunked=False),  # no length: delimited by the connection closing, which never comes
        stream_forever(chunked=False, content_length=10 * 2**30),  # declares 10 GB ...
    ],
    ids=["endless-chunked", "endless-close-delimited", "lying-content-length"],
)
async def test_endless_bodies_stopped_at_the_cap(site, handler):
    url = site.add("/feed.xml", handler=handler)
    started = time.monotonic()
    error = await feed_error(url, max_feed_bytes=256 * 1024)
    assert error.kind == "too-large"
    assert time.monotonic() - started < 2


async def test_page_cap_is_separate_from_the_feed_cap(site):
    url = site.add("/page", b"x" * 5000)
    async with Fetcher(settings(max_page_bytes=4096, max_feed_bytes=10_000)) as fetcher:
        assert (await fetcher.fetch_feed(FeedState(url))).content == b"x" * 5000
        with pytest.raises(FetchError) as info:
            await fetcher.fetch_page(url)
    assert info.value.kind == "too-large"


# --- redirects -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statuses, permanent",
    [
        ([301], True),
        ([308], True),
        ([301, 308, 301], True),
        ([302], False),
        ([307], False),
        ([303], False),
        ([301, 302], False),
    ],
)
async def test_redirect_chain_followed_and_permanence_recorded(site, statuses, permanent):
    final = site.add("/final.xml", FEED)
    target = final
    for i, status in reversed(list(enumerate(statuses))):
        target = site.add(f"/hop{i}", handler=redirect_to(target, status))
    result = await get_feed(target)
    assert result.content == FEED and result.url == final
    assert result.permanent_redirect == (final if permanent else None)


async def test_relative_location_is_resolved_against_the_hop(site):
    site.add("/new/feed.xml", FEED)
    url = site.add("/old/feed.xml", handler=redirect_to("../new/feed.xml", 301))
    result = await get_feed(url)
    assert result.url == site.url("/new/feed.xml") and result.permanent_redirect == result.url


async def test_redirect_to_304_keeps_validators(site):
    site.add("/new.xml", handler=reply(304))
    url = site.add("/old.xml", handler=redirect_to("/new.xml", 301))
    result = await get_feed(FeedState(url, '"e"'))
    assert result == NotModified(site.url("/new.xml"), '"e"', None, permanent_redirect=site.url("/new.xml"))
    assert site.requests_to("/new.xml")[0].headers["if-none-match"] == '"e"'


@pytest.mark.parametrize("max_redirects, hops, ok", [(3, 3, True), (3, 4, False), (0, 1, False), (0, 0, True)])
async def test_redirect_limit(site, max_redirects, hops, ok):
    target = site.add("/final.xml", FEED)
    for i in range(hops):
        target = site.add(f"/r{i}", handler=redirect_to(target, 302))
    if ok:
        assert (await get_feed(target, max_redirects=max_redirects)).content == FEED
    else:
        error = await feed_error(target, max_redirects=max_redirects)
        assert error.kind == "redirects" and f"more than {max_redirects}" in error.message


async def test_redirect_loop_stops(site):
    url = site.add("/loop", handler=redirect_to("/loop", 301))
    assert (await feed_error(url)).kind == "redirects"
    assert len(site.requests_to("/loop")) == FetchSettings().max_redirects + 1


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:text/xml,<rss/>",
        "gopher://127.0.0.1:70/",
        "ftp://127.0.0.1/x",
    ],
)
async def test_redirect_to_another_scheme_refused(site, location):
    url = site.add("/feed.xml", handler=redirect_to(location, 301))
    error = await feed_error(url)
    assert error.kind == "scheme" and "redirect to" in error.message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/feed", "feed.xml", "javascript:alert(1)"])
async def test_non_http_urls_refused(url):
    assert (await feed_error(url)).kind == "scheme"


async def test_redirect_without_location_is_an_error(site):
    url = site.add("/feed.xml", handler=reply(301))
    error = await feed_error(url)
    assert error.kind == "http" and error.status == 301


# --- HTTP errors and Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, kind, message",
    [
        (500, "http", "HTTP 500 Internal Server Error"),
        (404, "http", "HTTP 404 Not Found"),
        (410, "http", "HTTP 410 Gone"),
        (429, "rate-limited", "HTTP 429 Too Many Requests"),
        (503, "http", "HTTP 503 Service Unavailable"),
        (599, "http", "HTTP 599"),
    ],
)
async def test_http_errors(site, status, kind, message):
    url = site.add("/feed.xml", b"oops", status=status)
    error = await feed_error(url)
    assert (error.kind, error.status, error.message, error.retry_after) == (kind, status, message, None)


def _http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    "retry_after, low, high",
    [
        ("120", 120, 120),
        (timedelta(seconds=90), 80, 91),  # an HTTP-date this far ahead, written when the test runs
        ("99999999", 86400, 86400),
        (timedelta(days=400), 86400, 86400),
        (timedelta(hours=-1), 0, 0),
    ],
)
async def test_retry_after_on_rate_limits(site, status, retry_after, low, high):
    if isinstance(retry_after, timedelta):
        retry_after = _http_date(retry_after)
    url = site.add("/feed.xml", handler=reply(status, b"slow down", {"retry-after": retry_after}))
    error = await feed_error(url)
    assert error.status == status and error.retry_after is not None
    assert low <= error.retry_after.total_seconds() <= high


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", None),
        ("0", timedelta(0)),
        ("120", timedelta(seconds=120)),
        (" 120 ", timedelta(seconds=120)),
        ("86401", timedelta(days=1)),
        ("9" * 40, timedelta(days=1)),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("١٢٠", None),  # Arabic-Indic digits: isdigit() says yes, HTTP says no
        ("Wed, 25 Nov 2026 10:02:00 GMT", timedelta(minutes=2)),
        ("Wednesday, 25-Nov-26 10:02:00 GMT", timedelta(minutes=2)),  # RFC 850, still accepted by RFC 9110
        ("Wed Nov 25 10:02:00 2026", timedelta(minutes=2)),  # asctime
        ("Wed, 25 Nov 2026 09:00:00 GMT", timedelta(0)),  # in the past: retry now
        ("Fri, 31 Dec 9999 23:59:59 GMT", timedelta(days=1)),
        ("Wed, 99 Nov 2026 10:02:00 GMT", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == expected


# --- timeouts ------------------------------------------------------------------------------------------------


async def test_a_hung_server_times_out(site):
    url = site.add("/feed.xml", handler=hang)
    started = time.monotonic()
    error = await feed_error(url, read_timeout=timedelta(seconds=0.3), timeout=timedelta(seconds=5))
    assert error.kind == "timeout" and "0.3 s" in error.message
    assert time.monotonic() - started < 2


async def test_a_slow_drip_is_stopped_by_the_total_deadline(site):
    # Each byte comes well within the read timeout; only the total deadline can stop this.
    url = site.add("/feed.xml", handler=drip(FEED, 0.1))
    started = time.monotonic()
    error = await feed_error(url, read_timeout=timedelta(seconds=2), timeout=timedelta(seconds=0.5))
    elapsed = time.monotonic() - started
    assert error.kind == "timeout" and "0.5 s" in error.message
    assert 0.4 < elapsed < 1.5


async def test_the_deadline_covers_every_redirect_hop(site):
    slow = site.add("/slow.xml", handler=drip(FEED, 0.1))
    url = site.add("/start", handler=redirect_to(slow, 302))
    started = time.monotonic()
    error = await feed_error(url, timeout=timedelta(seconds=0.5))
    assert error.kind == "timeout" and time.monotonic() - started < 1.5


async def test_connection_refused(site):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        error = await feed_error(f"http://127.0.0.1:{port}/feed.xml")
    assert error.kind == "connect"


# --- concurrency limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "concurrency, per_host, requests, expected_peak",
    [(10, 2, 10, 2), (10, 1, 5, 1), (3, 10, 9, 3)],
    ids=["per-host-2", "per-host-1", "global-3"],
)
async def test_concurrency_limits(site, concurrency, per_host, requests, expected_peak):
    probe = InFlight(hold=0.05)
    url = site.add("/feed.xml", handler=probe)
    async with Fetcher(settings(concurrency=concurrency, per_host=per_host)) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch_feed(FeedState(url)) for _ in range(requests)))
        assert fetcher._hosts == {}  # idle hosts are forgotten
    assert all(r.content == b"<rss/>" for r in results) and probe.total == requests
    assert probe.peak == expected_peak  # never more; and the limit is really used, not 1


async def test_high_concurrency_spreads_over_several_clients(site):
    # One httpx client slows down past ~20 connections (docs/architecture.md, "Performance facts"): 45 slots become 3 clients of 15.
    probe = InFlight(hold=0.05)
    url = site.add("/feed.xml", handler=probe)
    async with Fetcher(settings(concurrency=45, per_host=45)) as fetcher:
        assert len(fetcher._clients) == 3
        results = await asyncio.gather(*(fetcher.fetch_feed(FeedState(url)) for _ in range(60)))
    assert all(r.content == b"<rss/>" for r in results) and probe.total == 60
    assert probe.peak <= 45


async def test_per_host_limit_is_per_host(site):
    # The same server under two names: each name has its own slots.
    probe = InFlight(hold=0.05)
    site.add("/feed.xml", handler=probe)
    urls = [site.url("/feed.xml"), f"http://127.1:{site.port}/feed.xml"]
    async with Fetcher(settings(per_host=1)) as fetcher:
        await asyncio.gather(*(fetcher.fetch_feed(FeedState(urls[i % 2])) for i in range(6)))
    assert probe.peak == 2


# --- proxies -------------------------------------------------------------------------------------------------


@pytest.fixture
def proxy_env(monkeypatch):
    proxy = LocalSite().start()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy.url(""))
    yield proxy
    proxy.stop()


async def test_proxy_environment_ignored_by_default(site, proxy_env):
    url = site.add("/feed.xml", FEED)
    assert (await get_feed(url)).content == FEED
    assert proxy_env.connections == 0 and len(site.requests) == 1


async def test_proxy_environment_used_when_configured(site, proxy_env):
    url = site.add("/feed.xml", FEED)
    error = await feed_error(url, use_env_proxy=True)
    assert error.status == 404  # our LocalSite is no proxy: it answers the absolute-form request with 404
    assert proxy_env.requests[0].path == url and site.requests == []


# --- the address guard ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "0x7f.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f000001",
        "127.0.0.1.",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::1]",
        "localhost",
        "LOCALHOST.",
        "feeds.localhost",
        "١٢٧.٠.٠.١",
        "１２７.０.０.１",
    ],
)
async def test_loopback_refused_without_an_allow_list_and_the_server_sees_nothing(site, host):
    site.add("/feed.xml", FEED)
    error = await feed_error(f"http://{host}:{site.port}/feed.xml", allow_networks=())
    assert isinstance(error, BlockedAddressError) and error.kind == "blocked"
    assert site.connections == 0 and site.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "0x7f.1", "2130706433", "127.0.0.1."])
async def test_odd_spellings_reach_the_address_they_spell_when_allowed(site, host):
    url = site.add("/feed.xml", FEED).replace("127.0.0.1", host)
    assert (await get_feed(url)).content == FEED


async def test_a_redirect_to_a_refused_address_is_refused_at_that_hop(site):
    try:
        other = LocalSite(host="127.0.0.2").start()
    except OSError:
        pytest.skip("cannot bind 127.0.0.2 here")
    try:
        other.add("/feed.xml", FEED)
        url = site.add("/feed.xml", handler=redirect_to(other.url("/feed.xml"), 301))
        assert (await get_feed(url)).content == FEED  # allowed when 127.0.0.0/8 is
        error = await feed_error(url, allow_networks=("127.0.0.1/32",))
        assert isinstance(error, BlockedAddressError) and "127.0.0.2" in error.message
        assert error.url == other.url("/feed.xml")
        assert len(site.requests) == 2 and other.connections == 1  # only the allowed run reached it
    finally:
        other.stop()


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.2:{port}/x",
        "http://[::1]:{port}/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
    ],
)
async def test_redirects_into_refused_space(site, location):
    url = site.add("/feed.xml", handler=redirect_to(location.format(port=site.port), 302))
    error = await feed_error(url, allow_networks=("127.0.0.1/32",))
    assert isinstance(error, BlockedAddressError)
    assert len(site.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [["10.0.0.5"], ["169.254.169.254"], ["::1"], ["fd00::1"], ["127.0.0.1", "10.1.2.3"], ["::ffff:192.168.1.1"]],
)
async def test_a_name_resolving_to_refused_space_is_refused(site, dns, answer):
    site.add("/feed.xml", FEED)
    dns["feeds.example.test"] = answer
    error = await feed_error(f"http://feeds.example.test:{site.port}/feed.xml")
    assert isinstance(error, BlockedAddressError) and "feeds.example.test resolves to" in error.message
    assert site.connections == 0


async def test_the_connection_goes_to_the_checked_address_with_no_second_lookup(site, dns):
    # DNS rebinding: the first answer is checked; a later lookup would say "metadata service". There is none.
    site.add("/feed.xml", FEED)
    dns["feeds.example.test"] = lambda n: ["127.0.0.1"] if n == 1 else ["169.254.169.254"]
    result = await get_feed(f"http://feeds.example.test:{site.port}/feed.xml")
    assert result.content == FEED
    assert dns.calls == ["feeds.example.test"]
    assert site.requests[0].headers["host"] == f"feeds.example.test:{site.port}"


@pytest.mark.parametrize(
    "failure, message",
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "Name or service not known"),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), "Temporary failure"),
    ],
)
async def test_dns_failures(dns, failure, message):
    dns["feeds.example.test"] = failure
    error = await feed_error("http://feeds.example.test/feed.xml")
    assert error.kind == "dns" and message in error.message
    assert error.url == "http://feeds.example.test/feed.xml"


async def test_tls_verifies_the_hostname_not_the_ip_it_connects_to(tmp_path, dns):
    if not shutil.which("openssl"):
        pytest.skip("openssl command not available")
    ca, cert, key = make_tls_files(tmp_path, "feeds.example.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    tls_site = LocalSite(tls=server_ctx).start()
    try:
        tls_site.add("/feed.xml", FEED)
        dns["feeds.example.test"] = ["127.0.0.1"]
        dns["other.example.test"] = ["127.0.0.1"]
        client_ctx = ssl.create_default_context(cafile=str(ca))
        async with httpx.AsyncClient(verify=client_ctx) as client:
            install_guard(client, GuardedBackend(parse_networks(LOOPBACK)))
            # The certificate names only feeds.example.test: a check against 127.0.0.1 would fail.
            response = await client.get(f"https://feeds.example.test:{tls_site.port}/feed.xml")
            assert response.content == FEED
            with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
                await client.get(f"https://other.example.test:{tls_site.port}/feed.xml")
            # localhost is allowed with the loopback network, and reaches 127.0.0.1: not the certificate's name.
            with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
                await client.get(f"https://localhost:{tls_site.port}/feed.xml")
    finally:
        tls_site.stop()


ALLOWED, REFUSED = True, False


@pytest.mark.parametrize(
    "address, allowed",
    [
        ("93.184.216.34", ALLOWED),
        ("8.8.8.8", ALLOWED),
        ("1.1.1.1", ALLOWED),
        ("2606:4700::1", ALLOWED),
        ("2a00:1450:4001:80b::200e", ALLOWED),
        ("64:ff9b::5db8:d822", ALLOWED),  # NAT64 of 93.184.216.34
        ("2002:5db8:d822::1", ALLOWED),  # 6to4 of 93.184.216.34
        ("::ffff:93.184.216.34", ALLOWED),
        ("127.0.0.1", REFUSED),
        ("127.255.255.254", REFUSED),
        ("0.0.0.0", REFUSED),
        ("0.1.2.3", REFUSED),
        ("10.0.0.1", REFUSED),
        ("172.16.0.1", REFUSED),
        ("172.31.255.255", REFUSED),
        ("192.168.1.1", REFUSED),
        ("100.64.0.1", REFUSED),
        ("100.127.255.255", REFUSED),
        ("169.254.169.254", REFUSED),
        ("168.63.129.16", REFUSED),  # Azure's platform endpoint (WireServer), a public address
        ("::ffff:168.63.129.16", REFUSED),
        ("64:ff9b::a83f:8110", REFUSED),  # NAT64 of 168.63.129.16
        ("168.63.129.17", ALLOWED),
        ("192.0.0.8", REFUSED),
        ("192.0.2.1", REFUSED),
        ("198.18.0.1", REFUSED),
        ("224.0.0.1", REFUSED),
        ("239.255.255.250", REFUSED),
        ("240.0.0.1", REFUSED),
        ("255.255.255.255", REFUSED),
        ("::", REFUSED),
        ("::1", REFUSED),
        ("::7f00:1", REFUSED),  # IPv4-compatible
        ("::ffff:127.0.0.1", REFUSED),
        ("::ffff:169.254.169.254", REFUSED),
        ("::ffff:0:7f00:1", REFUSED),  # IPv4-translated
        ("64:ff9b::7f00:1", REFUSED),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", REFUSED),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::5db8:d822", REFUSED),  # local-use NAT64
        ("2002:7f00:1::", REFUSED),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", REFUSED),  # 6to4 of 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", REFUSED),  # Teredo, client 127.0.0.1 (bits inverted)
        ("2001:0:7f00:1::1", REFUSED),  # Teredo, server 127.0.0.1
        ("fd00::1", REFUSED),
        ("fc00::1", REFUSED),
        ("fe80::1", REFUSED),
        ("fe80::1%eth0", REFUSED),
        ("fec0::1", REFUSED),
        ("ff02::1", REFUSED),
        ("100::1", REFUSED),
        ("2001:db8::1", REFUSED),
        ("3fff::1", REFUSED),
        ("4000::1", REFUSED),  # outside 2000::/3: not allocated for hosts
    ],
)
def test_address_checker(address, allowed):
    assert (refusal(ipaddress.ip_address(address)) is None) == allowed


@pytest.mark.parametrize(
    "address, allow, allowed",
    [
        ("127.0.0.1", ["127.0.0.0/8"], ALLOWED),
        ("::ffff:127.0.0.1", ["127.0.0.0/8"], ALLOWED),  # the same host as 127.0.0.1
        ("64:ff9b::7f00:1", ["127.0.0.0/8"], REFUSED),  # a NAT64 gateway's loopback is not ours to allow
        ("127.0.0.2", ["127.0.0.1/32"], REFUSED),
        ("10.1.2.3", ["10.1.0.0/16"], ALLOWED),
        ("10.2.0.1", ["10.1.0.0/16"], REFUSED),
        ("fd00::5", ["fd00::/8"], ALLOWED),
        ("::1", ["127.0.0.0/8"], REFUSED),
    ],
)
def test_allow_networks(address, allow, allowed):
    assert (refusal(ipaddress.ip_address(address), parse_networks(allow)) is None) == allowed


@pytest.mark.parametrize(
    "host, literal",
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("1.2.3.4.5", None),
        ("08.0.0.1", None),
        ("example.com", None),
        ("cafe.be", None),
    ],
)
def test_literal_address_reads_every_ipv4_spelling(host, literal):
    found = literal_address(host)
    assert (str(found) if found else None) == literal


@pytest.mark.parametrize(
    "host, refused",
    [
        ("localhost", True),
        ("LocalHost.", True),
        ("a.b.localhost", True),
        ("localhost.example.com", False),
        ("１２７.０.０.１", True),  # fullwidth digits
        ("١٢٧.٠.٠.١", True),  # Arabic-Indic digits
        ("example.com", False),
        ("bücher.example", False),
        ("10.0.0.1", True),
        ("0xa000001", True),
        ("93.184.216.34", False),
        ("", True),
    ],
)
def test_check_host_before_any_dns(host, refused):
    if refused:
        with pytest.raises(BlockedAddressError):
            check_host(host)
    else:
        check_host(host)


# --- secrets -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://example.com/feed.xml", "https://example.com/feed.xml"),
        ("https://user:s3cret@example.com/feed", "https://example.com/feed"),
        ("https://tok3n@example.com:8443/feed", "https://example.com:8443/feed"),
        ("https://example.com/feed?token=s3cret&format=rss", "https://example.com/feed?token=***&format=***"),
        ("https://example.com/feed?s3cret", "https://example.com/feed?***"),
        ("https://example.com/feed#access_token=s3cret", "https://example.com/feed"),
        ("http://u:s3cret@[::1]:99999/x?k=s3cret", "http://[::1]:99999/x"),  # unparsable port: best effort
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


async def test_error_messages_and_urls_carry_no_secrets(site, caplog):
    site.add("/feed.xml", b"no", status=500)
    url = site.url("/feed.xml?token=s3cret").replace("http://", "http://user:s3cret@")
    caplog.set_level(logging.DEBUG)
    error = await feed_error(url)
    assert error.status == 500
    assert "s3cret" not in str(error) and "s3cret" not in error.url
    assert "s3cret" not in caplog.text


def test_httpx_loggers_are_quiet():
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING


async def test_304s_keep_the_connection_alive(site):
    url = site.add("/feed.xml", FEED)
    async with Fetcher(settings()) as fetcher:
        first = await fetcher.fetch_feed(FeedState(url))
        for _ in range(5):
            assert isinstance(await fetcher.fetch_feed(FeedState(url, first.etag)), NotModified)
    assert site.connections == 1  # one connection for six requests: a 304 does not cost a new TCP handshake


# --- refusals an operator can lift say how ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, network",
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("localhost", "127.0.0.0/8"),
        ("10.1.2.3", "10.0.0.0/8"),
        ("0xa000001", "10.0.0.0/8"),
        ("[fd00::1]", "fc00::/7"),
        ("[::ffff:192.168.1.1]", "192.168.0.0/16"),
    ],
)
def test_every_refusal_names_the_setting_and_the_network_that_would_allow_it(host, network):
    with pytest.raises(BlockedAddressError) as info:
        check_host(host)
    assert f'[fetch] allow_networks = ["{network}"]' in info.value.message
    check_host(host, parse_networks([network]))  # and that value does allow it


async def test_a_name_resolving_to_refused_space_names_the_setting(dns):
    dns["intranet.example.test"] = ["10.20.0.5"]
    error = await feed_error("http://intranet.example.test/feed.xml", allow_networks=())
    assert "intranet.example.test resolves to 10.20.0.5" in error.message
    assert '[fetch] allow_networks = ["10.0.0.0/8"]' in error.message


async def test_an_allowed_loopback_network_allows_localhost_without_asking_dns(site, dns):
    site.add("/feed.xml", FEED)
    result = await get_feed(f"http://localhost:{site.port}/feed.xml", allow_networks=LOOPBACK)
    assert result.content == FEED
    assert dns.calls == []  # RFC 6761: localhost is never sent to a resolver
    error = await feed_error(f"http://localhost:{site.port}/feed.xml", allow_networks=("10.0.0.0/8",))
    assert isinstance(error, BlockedAddressError) and "allow_networks" in error.message
    assert len(site.requests) == 1


async def test_a_pooled_connection_the_server_closed_reads_as_readable_so_httpcore_drops_it():
    # The guard's stream keeps its socket; httpcore asks it before reusing an idle connection.
    listener = socket.create_server(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    listener.setblocking(False)
    backend = GuardedBackend(parse_networks(LOOPBACK))
    connecting = asyncio.ensure_future(backend.connect_tcp("127.0.0.1", listener.getsockname()[1], timeout=5))
    server_side, _ = await loop.sock_accept(listener)
    stream = await connecting
    try:
        sock = stream.get_extra_info("socket")
        assert sock is not None and stream.get_extra_info("is_readable") is False  # idle and open: reusable
        assert stream.get_extra_info("is_readable") is False  # asked again (the stream keeps one poller)
        server_side.close()  # the server hangs up on the idle connection
        assert select.select([sock.fileno()], [], [], 5)[0]  # the hang-up has reached us
        assert stream.get_extra_info("is_readable") is True  # so the pool treats it as expired
        await stream.aclose()
        assert sock.fileno() == -1 and stream.get_extra_info("is_readable") is True  # a closed stream: never reused
    finally:
        await stream.aclose()
        listener.close()


async def test_a_page_bomb_passes_the_fetcher_compressed_and_stops_at_the_decoded_cap_in_decoding(site, gzip_bomb):
    url = site.add("/page", handler=reply(200, gzip_bomb, {"content-encoding": "gzip"}))
    async with Fetcher(settings(max_page_bytes=2**20)) as fetcher:
        page = await fetcher.fetch_page(url)
    assert len(page.content) == len(gzip_bomb) and page.max_bytes == 2**20
    tracemalloc.start()
    try:
        with pytest.raises(FetchError) as info:
            decoded_page(page)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.kind == "too-large" and "1.0 MB" in info.value.message
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MB while refusing a bomb"
