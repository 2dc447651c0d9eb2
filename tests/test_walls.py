"""Bot challenges, cookie-consent walls and paywalls: recognised by their signs, recorded as the page's outcome, and
the feed's own text used instead. The pages are ours, written to imitate each kind of wall."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.helpers.news import make_config, poll_all
from watcher.walls import challenge_sign, page_wall

CLOUDFLARE_CHALLENGE = b"""<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="360"></head><body><div class="main-wrapper" role="main">
<h1 class="zone-name-title h1">news.example</h1><h2>Checking if the site connection is secure</h2>
<noscript>Enable JavaScript and cookies to continue</noscript>
<script>(function(){window._cf_chl_opt={cvId: '3',cZone: "news.example",cType: 'managed'};
var a = document.createElement('script');a.src = '/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1';
document.getElementsByTagName('head')[0].appendChild(a);}());</script></div></body></html>"""

CONSENT_WALL = b"""<!DOCTYPE html><html lang="en"><head><title>Before you continue</title></head>
<body><div id="onetrust-consent-sdk"><div class="ot-sdk-container">
<h2>We value your privacy</h2>
<p>We and our 842 partners store and access information on your device, such as cookies, for personalised
advertising and content, audience measurement and product development.</p>
<button id="onetrust-accept-btn-handler">Accept all cookies</button><button>Reject all</button>
<a href="/privacy">Manage preferences</a></div></div></body></html>"""

PAYWALL_TEASER = b"""<!DOCTYPE html><html lang="en"><head><title>Inside the drone plant</title>
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "NewsArticle",
"headline": "Inside the drone plant", "isAccessibleForFree": false,
"hasPart": {"@type": "WebPageElement", "isAccessibleForFree": false, "cssSelector": ".paywall"}}</script>
</head><body><article><h1>Inside the drone plant</h1>
<p>The factory at Yelabuga has tripled its output of attack drones since the spring, according to documents
seen by our reporters, and North Korean workers are now on its night shifts.</p>
<div class="paywall"><p>Subscribe to continue reading. Already a subscriber? Log in.</p></div>
</article></body></html>"""

ARTICLE = b"""<!DOCTYPE html><html lang="en"><head><title>Drone talks</title></head><body><article>
<h1>Drone talks</h1><p>Officials from both countries met on Tuesday to discuss the production of attack drones at a
new factory, and agreed to meet again in the spring to review the plant's first months of output.</p>
<p>The talks covered supply lines, training and the workers who would be sent to the plant.</p>
</article></body></html>"""


# --- the signs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, headers, body, sign",
    [
        (403, {"cf-mitigated": "challenge"}, b"", "cf-mitigated: challenge"),
        (503, {}, CLOUDFLARE_CHALLENGE, "Cloudflare challenge script"),
        (
            403,
            {},
            b"<html><script src='https://geo.captcha-delivery.com/captcha/'></script></html>",
            "DataDome captcha",
        ),
        (403, {}, b"<h1>Forbidden</h1>", None),  # an ordinary refusal is not a challenge
        (404, {"cf-mitigated": "challenge"}, CLOUDFLARE_CHALLENGE, None),  # nor is a page that is not there
    ],
)
def test_challenge_signs(status, headers, body, sign):
    assert challenge_sign(status, headers, body) == sign


@pytest.mark.parametrize(
    "content, text, wall",
    [
        (CONSENT_WALL, "We value your privacy. We and our 842 partners store...", "consent"),
        (PAYWALL_TEASER, "The factory at Yelabuga has tripled its output.", "paywall"),
        (b"<div class='tp-modal'></div><p>Subscribe to continue reading</p>", "A short teaser.", "paywall"),
        (CLOUDFLARE_CHALLENGE, "Checking if the site connection is secure", "blocked"),  # a challenge with 200
        (ARTICLE, "Officials from both countries met on Tuesday...", None),
        # A real article with a consent banner's script beside its text is not a wall.
        (b'<div id="onetrust-consent-sdk"></div>' + ARTICLE, "x" * 3000, None),
    ],
)
def test_wall_signs(content, text, wall):
    found = page_wall(content, text)
    assert (found[0] if found else None) == wall


# --- end to end: a feed whose pages are walled --------------------------------------------------------------------


def walled_feed(site) -> str:
    items = [
        ("challenge-403", "Drone plant doubles output"),
        ("challenge-503", "Drone factory hires North Korean workers"),
        ("consent", "Drone production talks in Moscow"),
        ("paywall", "Inside the drone plant"),
        ("open", "Drone talks"),
    ]
    xml = ['<?xml version="1.0"?><rss version="2.0"><channel><title>Walled News</title>']
    for slug, title in items:
        xml.append(
            f"<item><title>{title}</title><link>{site.url(f'/pages/{slug}.html')}</link><guid>{slug}</guid>"
            f"<description>From the feed: {title}, about drone production at the factory.</description></item>"
        )
    xml.append("</channel></rss>")
    site.add("/walled.rss", "".join(xml), content_type="application/rss+xml")
    html = "text/html; charset=utf-8"
    site.add(
        "/pages/challenge-403.html",
        CLOUDFLARE_CHALLENGE,
        status=403,
        headers={"cf-mitigated": "challenge"},
        content_type=html,
    )
    site.add("/pages/challenge-503.html", CLOUDFLARE_CHALLENGE, status=503, content_type=html)
    site.add("/pages/consent.html", CONSENT_WALL, content_type=html)
    site.add("/pages/paywall.html", PAYWALL_TEASER, content_type=html)
    site.add("/pages/open.html", ARTICLE, content_type=html)
    return site.url("/walled.rss")


async def test_walled_pages_are_named_and_the_feeds_text_is_used(site, store, extractor):
    walled_feed(site)
    config = make_config(site, feeds={"walled": "/walled.rss"})
    outcomes = await poll_all(config, store, extractor)
    assert outcomes["walled"].update.status == "ok"  # the feed itself is fine
    rows = {
        r["url"].rsplit("/", 1)[1]: r
        for r in store.db.query("SELECT url, page_outcome, body, body_source FROM articles")
    }
    assert {slug: r["page_outcome"] for slug, r in rows.items()} == {
        "challenge-403.html": "blocked",
        "challenge-503.html": "blocked",
        "consent.html": "consent",
        "paywall.html": "paywall",
        "open.html": "ok",
    }
    for slug in ("challenge-403.html", "challenge-503.html", "consent.html", "paywall.html"):
        assert rows[slug]["body"].startswith("From the feed:") and rows[slug]["body_source"] == "feed-summary"
        assert "cookies" not in rows[slug]["body"] and "Just a moment" not in rows[slug]["body"]
    assert rows["open.html"]["body_source"] == "page" and "supply lines" in rows["open.html"]["body"]

    health = next(store.db.query("SELECT * FROM feed_health WHERE name = 'walled'"))
    assert (health["pages_tried"], health["pages_walled"]) == (5, 4)
    assert set(health["walls"].split(", ")) == {"blocked", "consent", "paywall"}


async def test_status_names_a_feed_whose_pages_are_walled(site, store, extractor, monkeypatch):
    from types import SimpleNamespace

    from watcher.cli.core import status

    walled_feed(site)
    config = make_config(site, feeds={"walled": "/walled.rss"})
    await poll_all(config, store, extractor)
    app = SimpleNamespace(store=store, config=config)
    result = CliRunner().invoke(status, [], obj=app, catch_exceptions=False)
    assert "article pages behind a wall" in result.output
    assert "walled: 4 of 5 pages (" in result.output
    as_json = CliRunner().invoke(status, ["--json"], obj=app, catch_exceptions=False)
    row = json.loads(as_json.output.splitlines()[0])
    assert row["pages_walled"] == 4
