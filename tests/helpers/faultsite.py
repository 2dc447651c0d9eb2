"""The fault-injection site: every hostile case of docs/reliability.md served by path from a LocalSite on 127.0.0.1.

`install(site)` adds every case and returns {case name: feed path}. Each case says what watcher must do with
it (`status`, `kind`), and may carry a `check(store, site)` for what must not have been stored or requested.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.localsite import LocalSite, drip, redirect_to, reply, stream_forever

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds"


def rss(items: str, title: str = "Hostile desk") -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>
<link>https://hostile.example/</link>{items}</channel></rss>""".encode()


def item(title: str, link: str, guid: str, description: str = "drone factory") -> str:
    return f"<item><title>{title}</title><link>{link}</link><guid>{guid}</guid><description>{description}</description></item>"


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    status: str  # the feed's outcome: "ok" or "error"
    kind: str | None = None  # the error kind for "error"
    check: Callable | None = None  # extra assertions: check(store, site)
    reliability: str = ""  # the line of docs/reliability.md it proves


def _nothing_from_passwd(store, site):
    dump = "\n".join(store.db.conn.iterdump())
    assert "root:x:0" not in dump and "/bin/bash" not in dump


def _no_dtd_fetched(store, site):
    assert site.requests_to("/hostile/evil.dtd") == []


def _safe_strings(store, site):
    for row in store.db.query("SELECT title, body, url FROM articles"):
        assert len(row["title"]) <= 100_000
        for value in row.values():
            value.encode("utf-8")  # valid Unicode, no lone surrogates
            assert not any(ord(c) < 32 and c not in "\n\t" for c in value)
    dates = [r[0] for r in store.db.execute("SELECT published_at FROM articles")]
    assert all(d is None or d < "2101" for d in dates)  # year 9999 is not a date we believe


def _only_http_links(store, site):
    for (url,) in store.db.execute(
        "SELECT url FROM articles UNION SELECT link FROM article_sources WHERE link IS NOT NULL"
    ):
        assert url.startswith(("http://", "https://", "urn:watcher:")), url
    fetched = {r.path for r in site.requests} - {"/hostile/javascript-links.xml"}
    assert not [p for p in fetched if "alert(" in p or "passwd" in p or "script" in p]


def _retry_after_clamped(store, site):
    row = store.db.execute(
        "SELECT (julianday(next_check_at) - julianday(last_checked_at)) * 24 FROM feeds WHERE url LIKE '%rate-limited%'"
    ).fetchone()
    assert 1 <= row[0] <= 24 * 1.11  # honoured (far beyond the 15 min interval), but clamped to a day (+ jitter)


def _nothing_deleted(store, site):
    assert store.db.execute("SELECT count(*) FROM articles WHERE matched = 1").fetchone()[0] >= 1


def install(site: LocalSite) -> list[Case]:
    base = site.url("")
    bomb = gzip.compress(b"<" + b"a" * (64 * 2**20))  # 64 MB of text in ~64 KB
    add = site.add
    add("/hostile/billion-laughs.xml", (FEEDS / "billion_laughs.xml").read_bytes())
    add("/hostile/external-entity.xml", (FEEDS / "external_entity.xml").read_bytes())
    add(
        "/hostile/parameter-entity.xml",
        b"""<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<rss version="2.0"><channel><title>t</title><item><title>x</title><link>https://h.example/1</link></item></channel></rss>""",
    )
    add("/hostile/evil.dtd", b'<!ENTITY x "drone">')
    add(
        "/hostile/external-dtd.xml",
        f"""<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{base}/hostile/evil.dtd">
<rss version="2.0"><channel><title>t</title><item><title>&x;</title><link>https://h.example/2</link></item></channel></rss>""".encode(),
    )
    add(
        "/hostile/expanding-entity.xml",
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "'
        + b"drone " * 5000
        + b'">]>'
        + rss(item("&big;&big;&big;&big;&big;&big;&big;&big;", "https://h.example/3", "big") * 200)[21:],
    )
    add(
        "/hostile/gzip-bomb.xml",
        handler=reply(200, bomb, {"content-encoding": "gzip", "content-type": "application/xml"}),
    )
    add(
        "/hostile/stacked-gzip.xml",
        handler=reply(200, gzip.compress(gzip.compress(rss(""))), {"content-encoding": "gzip, gzip"}),
    )
    add("/hostile/unknown-encoding.xml", handler=reply(200, b"xx", {"content-encoding": "zstd-from-the-future"}))
    add("/hostile/endless.xml", handler=stream_forever(chunked=True))
    add("/hostile/lying-length.xml", handler=stream_forever(chunked=False, content_length=100))
    add("/hostile/drip.xml", handler=drip(rss(item("x", "https://h.example/4", "d")), 0.5))
    add(
        "/hostile/feedparser-breaker.xml",
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>&#xD800;&#x110000;</title>'
        b"<item><title>Drone factory &#55296; &#x110000; opens</title><link>https://h.example/5</link><guid>fp</guid>"
        b"<description>drone factory</description></item></channel>",
    )
    huge = "Drone factory " + "\u0000\u0007\u202e" * 3 + "x" * 2_000_000
    add(
        "/hostile/huge-fields.xml",
        rss(
            item(
                huge,
                f"{base}/nowhere/huge.html",
                "huge",
                "drone factory \udcff".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
            ).replace("</item>", "<pubDate>Fri, 31 Dec 9999 23:59:59 GMT</pubDate></item>")
        )
        .replace(b"\x00", b"")
        .replace(b"Drone factory ", b"Drone factory \xff\xfe ", 1),
    )
    add(
        "/hostile/javascript-links.xml",
        rss(
            item("Drone factory A", "javascript:alert(1)", "js1")
            + item("Drone factory B", "data:text/html,<script>x</script>", "js2")
            + item("Drone factory C", "file:///etc/passwd", "js3")
            + item("Drone factory D", f"{base}/hostile/ok-page.html", "js4")
        ),
    )
    add(
        "/hostile/ok-page.html",
        "<html><body><article><p>" + "A drone factory opened. " * 20 + "</p></article></body></html>",
        content_type="text/html",
    )
    add("/hostile/redirect-to-metadata.xml", handler=redirect_to("http://169.254.169.254/latest/meta-data/", 302))
    add("/hostile/redirect-to-private.xml", handler=redirect_to("http://10.0.0.1/feed.xml", 301))
    add("/hostile/redirect-to-mapped.xml", handler=redirect_to("http://[::ffff:192.168.1.1]/feed.xml", 301))
    add("/hostile/redirect-to-file.xml", handler=redirect_to("file:///etc/passwd", 302))
    add("/hostile/rate-limited.xml", handler=reply(429, b"slow down", {"retry-after": "99999999"}))
    add(
        "/hostile/unavailable.xml", handler=reply(503, b"maintenance", {"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"})
    )
    add("/hostile/not-a-feed.html", (FEEDS / "not_a_feed.html").read_bytes(), content_type="text/html")
    add(
        "/hostile/json-bomb.json",
        b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        content_type="application/feed+json",
    )
    return [
        Case(
            "billion laughs",
            "/hostile/billion-laughs.xml",
            "error",
            "parse",
            reliability="entity tricks: billion laughs",
        ),
        Case(
            "external entity",
            "/hostile/external-entity.xml",
            "error",
            "parse",
            _nothing_from_passwd,
            "entity tricks: external entities",
        ),
        Case(
            "parameter entity",
            "/hostile/parameter-entity.xml",
            "error",
            "parse",
            _nothing_from_passwd,
            "entity tricks: parameter entities",
        ),
        Case(
            "external DTD",
            "/hostile/external-dtd.xml",
            "ok",
            None,
            _no_dtd_fetched,
            "entity tricks: external DTDs, no request made",
        ),
        Case(
            "one entity expanding",
            "/hostile/expanding-entity.xml",
            "error",
            "parse",
            reliability="small feed expanding to hundreds of MB",
        ),
        Case(
            "gzip bomb",
            "/hostile/gzip-bomb.xml",
            "error",
            "too-large",
            reliability="gzip bomb stopped at the decoded cap",
        ),
        Case("stacked gzip", "/hostile/stacked-gzip.xml", "error", "encoding", reliability="stacked encodings"),
        Case("unknown encoding", "/hostile/unknown-encoding.xml", "error", "encoding", reliability="unknown encodings"),
        Case("endless chunked", "/hostile/endless.xml", "error", "too-large", reliability="endless chunked stream"),
        Case("lying length", "/hostile/lying-length.xml", "error", None, reliability="lying Content-Length"),
        Case(
            "slow drip", "/hostile/drip.xml", "error", "timeout", reliability="a byte every half second: total deadline"
        ),
        Case(
            "feedparser breaker",
            "/hostile/feedparser-breaker.xml",
            "ok",
            None,
            _safe_strings,
            "inputs that make feedparser raise",
        ),
        Case(
            "huge and broken fields",
            "/hostile/huge-fields.xml",
            "ok",
            None,
            _safe_strings,
            "megabyte titles, control chars, invalid UTF-8, year 9999",
        ),
        Case(
            "non-http links",
            "/hostile/javascript-links.xml",
            "ok",
            None,
            _only_http_links,
            "javascript:/data:/file: links never fetched",
        ),
        Case(
            "redirect to metadata",
            "/hostile/redirect-to-metadata.xml",
            "error",
            "blocked",
            reliability="redirect to link-local metadata address",
        ),
        Case(
            "redirect to private",
            "/hostile/redirect-to-private.xml",
            "error",
            "blocked",
            reliability="redirect to RFC 1918",
        ),
        Case(
            "redirect to mapped",
            "/hostile/redirect-to-mapped.xml",
            "error",
            "blocked",
            reliability="IPv4-mapped IPv6 spelling",
        ),
        Case("redirect to file", "/hostile/redirect-to-file.xml", "error", "scheme", reliability="file: scheme"),
        Case(
            "429 absurd Retry-After",
            "/hostile/rate-limited.xml",
            "error",
            "rate-limited",
            _retry_after_clamped,
            "Retry-After clamped to a day",
        ),
        Case(
            "503 Retry-After date",
            "/hostile/unavailable.xml",
            "error",
            "http",
            reliability="503 with an HTTP-date Retry-After",
        ),
        Case("HTML instead of a feed", "/hostile/not-a-feed.html", "error", "parse"),
        Case("deeply nested JSON", "/hostile/json-bomb.json", "error", "parse"),
    ]


def dump_outcomes(outcomes) -> str:
    return json.dumps(
        {k: (v.update.status, v.update.error_kind, v.update.error) for k, v in outcomes.items()}, indent=1
    )
