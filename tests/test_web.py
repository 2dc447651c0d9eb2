"""The analyst's page in-process (httpx's ASGI transport on the test's loop): every page renders what the store
holds, the forms change what they say they change (config.toml, the store), and nothing changes without a POST
carrying its CSRF token. The browser tests (test_web_browser.py) drive the same pages through chromium."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.helpers.news import serve_site
from tests.helpers.web_support import NOW, seed, write_config
from watcher.alerts.digest import RenderSettings, build_message, item_from_delivery
from watcher.runtime import Runtime
from watcher.store import Store
from watcher.web import Access, ConfigFile, WebContext, build_app

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


class Page:
    """One browser's worth of requests: cookies kept, the CSRF token read from the last page."""

    def __init__(self, client: httpx.AsyncClient, context: WebContext) -> None:
        self.client = client
        self.context = context
        self.csrf = ""

    async def get(self, url: str, **kw) -> httpx.Response:
        r = await self.client.get(url, **kw)
        m = CSRF.search(r.text)
        if m:
            self.csrf = m.group(1)
        return r

    async def post(self, url: str, data: dict, *, csrf: bool = True, **kw) -> httpx.Response:
        if csrf and not self.csrf:
            await self.get("/feeds")  # a page with forms
        return await self.client.post(url, data={**data, **({"csrf": self.csrf} if csrf else {})}, **kw)


@pytest.fixture
async def web(tmp_path, store, extractor):
    """The page over each backend's store (conftest.py)."""
    config = write_config(tmp_path)
    seed(store, config)
    async with Runtime(config, workers=extractor) as runtime:
        context = WebContext(
            store, ConfigFile(config), runtime, Access(loopback=True, password=None), clock=lambda: NOW
        )
        transport = httpx.ASGITransport(app=build_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8710") as client:
            yield Page(client, context)


def config_text(web) -> str:
    return Path(web.context.config().path).read_text(encoding="utf-8")


def titles(html: str) -> list[str]:
    return re.findall(r'class="title" href="/article/\d+">([^<]+)</a>', html)


# --- matches and articles ---------------------------------------------------------------------------------------


async def test_matches_newest_first_with_terms_marked_and_local_times(web):
    r = await web.get("/matches")
    assert r.status_code == 200
    assert titles(r.text) == [
        "North Korea and Russia to co-produce attack drones",
        "Pyongyang sends thousands more troops to Russia",
        "Iran and Russia expand joint drone production",
    ]
    assert "<mark>drones</mark>" in r.text and "[[" not in r.text
    # 2026-12-06 10:00 UTC is 19:00 in Seoul.
    assert "published 2026-12-06 19:00 KST" in r.text


@pytest.mark.parametrize(
    "query, expected",
    [
        ("topic=troop_deployment", ["Pyongyang sends thousands more troops to Russia"]),
        ("feed=asia", ["Iran and Russia expand joint drone production"]),
        (
            "since=24h",
            ["North Korea and Russia to co-produce attack drones", "Pyongyang sends thousands more troops to Russia"],
        ),
        ("q=engines", ["Iran and Russia expand joint drone production"]),
        ("q=snow", ["Seoul braces for snow"]),  # search finds stored unmatched articles too
        ("q=drones&topic=troop_deployment", []),
    ],
)
async def test_matches_filter_by_topic_feed_and_time_and_search(web, query, expected):
    r = await web.get("/matches?" + query)
    assert r.status_code == 200
    assert titles(r.text) == expected


async def test_a_bad_search_or_span_is_said_not_a_crash(web):
    r = await web.get("/matches?q=%22engines")  # an unclosed quote still searches (store.fts_query)
    assert r.status_code == 200 and titles(r.text) == ["Iran and Russia expand joint drone production"]
    r = await web.get("/matches?since=soon")
    assert "not a time span" in r.text


async def test_the_article_page_shows_text_sources_and_why_it_matched(web):
    r = await web.get("/matches?topic=drone_cooperation&since=24h")
    article_id = re.search(r'href="/article/(\d+)"', r.text).group(1)
    r = await web.get(f"/article/{article_id}")
    assert r.status_code == 200
    assert "build a factory that will produce attack drones" in r.text
    assert "Sources (1)" in r.text and "world" in r.text
    section = r.text[r.text.index('data-topic="drone_cooperation"') :]
    assert "drone_cooperation: match" in section
    assert "✓ <code>drone*</code> found: drones" in section
    assert '<a href="https://news.example/drone-plant" rel="noopener noreferrer"' in r.text
    assert (await web.get("/article/99999")).status_code == 404


async def test_feed_text_is_escaped_and_unsafe_links_are_not_links(web):
    config = web.context.config()
    hostile = [("world", "x", "<script>alert('drone')</script> drones produced", "javascript:void drones factory", 1)]
    seed(web.context.store, config, stories=hostile)
    web.context.store.db.conn.execute("UPDATE articles SET url = 'javascript:alert(1)' WHERE title LIKE '<script>%'")
    r = await web.get("/matches")
    assert "<script>alert" not in r.text
    assert "&lt;script&gt;alert(&#39;drone&#39;)&lt;/script&gt;" in r.text
    assert 'href="javascript:' not in r.text


# --- try a rule ---------------------------------------------------------------------------------------------------


async def test_the_rule_check_says_where_the_error_is(web):
    r = await web.get("/rules/drone_cooperation/check", params={"rule": "drone* AND ("})
    assert r.json()["ok"] is False and r.json()["position"] == 12
    r = await web.get("/rules/drone_cooperation/check", params={"rule": "drone* AND plant"})
    assert r.json() == {"ok": True}


async def test_trying_a_rule_against_stored_news_shows_what_it_adds_and_drops(web):
    await web.get("/rules/drone_cooperation")
    r = await web.post("/rules/drone_cooperation/try", {"rule": "drone* AND NOT Iran", "against": "days", "days": "7"})
    assert r.status_code == 200
    assert re.search(r'id="added-count">1<', r.text)  # the drone show (no factory needed now)
    assert re.search(r'id="dropped-count">1<', r.text)  # Iran's
    assert re.search(r'id="kept-count">1<', r.text)
    added = r.text[r.text.index("<h3>Added</h3>") : r.text.index("<h3>Dropped</h3>")]
    assert "Drone light show delights Seoul" in added
    # Nothing was written:
    assert "drone* AND (produc* OR factory OR plant)" in (config_text(web))


async def test_a_broken_rule_is_shown_at_its_position_without_script(web):
    await web.get("/rules/drone_cooperation")
    r = await web.post("/rules/drone_cooperation/try", {"rule": "drone* AND (plant", "against": "days", "days": "7"})
    assert r.status_code == 422
    assert '<pre class="rule-caret">drone* AND (plant<mark> </mark></pre>' in r.text


async def test_trying_a_rule_on_a_text_explains_both_rules(web):
    await web.get("/rules/troop_deployment")
    data = {"rule": "troop*", "against": "text", "title": "Troops on parade", "text": "The troops marched past."}
    r = await web.post("/rules/troop_deployment/try", data)
    assert "This rule: match" in r.text and "The current rule: no match" in r.text


async def test_trying_a_rule_on_a_url_fetches_through_the_guard(web, site):
    serve_site(site)
    await web.get("/rules/drone_cooperation")
    data = {"rule": "drone*", "against": "url", "url": site.url("/articles/drone-plant.html")}
    r = await web.post("/rules/drone_cooperation/try", data)
    assert "This rule: match" in r.text and "<mark>drones</mark>" in r.text
    r = await web.post("/rules/drone_cooperation/try", {**data, "url": "http://169.254.169.254/latest/meta-data/"})
    assert "169.254.169.254" in r.text and "This rule" not in r.text
    assert "link-local" in r.text  # the guard's refusal, said on the page


async def test_saving_a_rule_writes_the_config_keeping_comments_and_rematches(web):
    await web.get("/rules/drone_cooperation")
    r = await web.post("/rules/drone_cooperation/save", {"rule": "drone*"})
    assert r.status_code == 303 and r.headers["location"] == "/rules/drone_cooperation"
    text = config_text(web)
    assert 'rule = "drone*"' in text and "# drones made together" in text and "# --- Topics ---" in text
    r = await web.get("/rules/drone_cooperation")
    assert "Rematched 5 stored articles: 1 new matches, 0 retracted" in r.text
    r = await web.get("/matches?topic=drone_cooperation")
    assert "Drone light show delights Seoul" in titles(r.text)


async def test_a_broken_rule_is_not_saved(web):
    before = config_text(web)
    await web.get("/rules/drone_cooperation")
    r = await web.post("/rules/drone_cooperation/save", {"rule": "drone* AND ("})
    assert r.status_code == 422 and "rule-caret" in r.text
    assert config_text(web) == before


# --- feeds and alerts ---------------------------------------------------------------------------------------------


async def test_feeds_show_health_and_add_by_discovery_and_remove(web, site):
    serve_site(site)
    site.add(
        "/home.html", '<html><head><link rel="alternate" type="application/atom+xml" href="/asia.atom"></head></html>'
    )
    r = await web.get("/feeds")
    assert 'data-feed="world"' in r.text and "2026-12-06" in r.text  # last success in the local zone
    r = await web.post("/feeds/add", {"url": site.url("/home.html"), "name": "Asia desk", "interval": "30m"})
    assert r.status_code == 303
    written = config_text(web)
    assert 'name = "Asia desk"' in written and site.url("/asia.atom") in written
    r = await web.get("/feeds")
    assert "Added &#39;Asia desk&#39;" in r.text and "announced by the page" in r.text
    r = await web.post("/feeds/remove", {"name": "Asia desk"})
    assert r.status_code == 303
    assert "Asia desk" not in config_text(web)


@pytest.mark.parametrize(
    "url, said",
    [("ftp://example.org/feed", "http:// or https://"), ("http://10.1.2.3/feed", "10.1.2.3")],
)
async def test_a_feed_that_cannot_be_added_says_why(web, url, said):
    await web.get("/feeds")
    r = await web.post("/feeds/add", {"url": url})
    assert r.status_code == 422 and said in r.text


async def test_dead_alerts_are_listed_and_retried(web):
    store = web.context.store
    ids = [d["id"] for d in store.list_deliveries(status="pending")]
    store.mark_dead(ids[:1], "550 mailbox unavailable")
    r = await web.get("/alerts")
    dead = r.text[r.text.index('id="dead"') : r.text.index('id="failing"')]
    assert f'data-delivery="{ids[0]}"' in dead and "550 mailbox unavailable" in dead
    r = await web.post("/alerts/retry", {"id": str(ids[0])})
    assert r.status_code == 303
    assert [d["id"] for d in store.list_deliveries(status="dead")] == []
    assert "1 dead alert(s) put back in the queue" in (await web.get("/alerts")).text


# --- safe by default ------------------------------------------------------------------------------------------


async def test_every_post_needs_its_csrf_token(web):
    from starlette.routing import Route

    app = build_app(web.context).app
    posts = [r.path for r in app.routes if isinstance(r, Route) and "POST" in (r.methods or ())]
    assert len(posts) >= 7
    for path in posts:
        url = path.replace("{topic}", "drone_cooperation").replace("{story_id:int}", "1")
        r = await web.post(url, {"rule": "x", "name": "world", "id": "1"}, csrf=False)
        assert r.status_code == 403, path
        r = await web.client.post(url, data={"csrf": "0" * 40, "name": "world"})
        assert r.status_code == 403, path
    assert 'name = "world"' in config_text(web)


async def test_a_post_from_another_site_or_a_foreign_host_name_is_refused(web):
    await web.get("/feeds")
    r = await web.post("/feeds/remove", {"name": "world"}, headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    r = await web.client.get("/matches", headers={"host": "evil.example"})  # DNS rebinding to 127.0.0.1
    assert r.status_code == 400
    assert 'name = "world"' in config_text(web)


async def test_pages_forbid_framing_and_scripts_from_elsewhere(web):
    r = await web.get("/rules/drone_cooperation")  # the page with a script: ours, from /static
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert re.findall(r"<script[^>]*>", r.text) == ['<script src="/static/rule.js">']  # no inline script
    assert (await web.get("/static/rule.js")).status_code == 200


async def test_elsewhere_than_loopback_the_pages_need_the_password(web):
    web.context.access = Access(loopback=False, password="s3cret")
    app = build_app(web.context)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://watcher.example.org") as client:
        page = Page(client, web.context)
        r = await page.get("/feeds")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Ffeeds"
        r = await client.post("/feeds/remove", data={"name": "world"})
        assert r.status_code == 403
        await page.get("/login")
        r = await page.post("/login", {"password": "wrong", "next": "/feeds"})
        assert r.status_code == 403 and "Wrong password" in r.text
        r = await page.post("/login", {"password": "s3cret", "next": "/feeds"})
        assert r.status_code == 303 and r.headers["location"] == "/feeds"
        assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
        r = await page.get("/feeds")
        assert r.status_code == 200 and 'data-feed="world"' in r.text
    async with httpx.AsyncClient(transport=transport, base_url="https://watcher.example.org") as client:
        r = await client.get("/matches", headers={"authorization": "Bearer s3cret"})
        assert r.status_code == 200
        r = await client.get("/matches", headers={"authorization": "Bearer guess"})
        assert r.status_code == 303


async def test_without_a_password_elsewhere_only_the_probes_answer(web):
    async def healthz():
        from watcher.ops import Health, health_response

        return health_response(Health("ok"))

    web.context.access = Access(loopback=False, password=None)
    web.context.healthz = healthz
    transport = httpx.ASGITransport(app=build_app(web.context))
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:9108") as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "reasons": []}
        r = await client.get("/matches")
        assert r.status_code == 403 and "web_password_env" in r.text


async def test_login_attempts_are_limited(web):
    web.context.access = Access(loopback=False, password="s3cret")
    transport = httpx.ASGITransport(app=build_app(web.context))
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:9108") as client:
        page = Page(client, web.context)
        await page.get("/login")
        for _ in range(10):
            assert (await page.post("/login", {"password": "guess"})).status_code == 403
        r = await page.post("/login", {"password": "s3cret"})
        assert r.status_code == 429


# --- links in alerts ----------------------------------------------------------------------------------------------


def test_alerts_link_each_item_to_its_page_when_public_url_is_set(tmp_path):
    config = write_config(tmp_path)
    store = Store.open(tmp_path / "watcher.db")
    seed(store, config)
    deliveries = store.recent_matches(NOW - timedelta(days=3))
    items = [item_from_delivery(d) for d in deliveries]
    plain = build_message("digest", "inbox", items, NOW, RenderSettings.from_config(config))
    assert "/article/" not in plain.text
    settings = RenderSettings("UTC", (), "https://watcher.example.org/")
    message = build_message("digest", "inbox", items, NOW, settings)
    links = re.findall(r"why it matched: (\S+)", message.text)
    assert sorted(links) == sorted(f"https://watcher.example.org/article/{d.article_id}" for d in deliveries)
    assert f'<a href="https://watcher.example.org/article/{deliveries[0].article_id}"' in message.html
    store.close()


# --- watcher ui ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_watcher_ui_serves_the_page_from_the_database_alone(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    config = write_config(tmp_path)
    store = Store.open(tmp_path / "watcher.db")
    seed(store, config)
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    command = [sys.executable, "-m", "watcher", "--config", str(tmp_path / "config.toml"), "ui"]
    proc = subprocess.Popen([*command, "--http", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)/", line).group(1)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url + "/matches", timeout=10) as r:
            page = r.read().decode()
        assert "North Korea and Russia to co-produce attack drones" in page
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    assert proc.returncode == 0
    # Elsewhere than loopback without a password, it refuses to start and says what to do.
    refused = subprocess.run([*command, "--http", "0.0.0.0:0"], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode != 0 and "web_password_env" in refused.stderr


@pytest.mark.parametrize(
    "origin, status",
    [("https://watcher.example.org", 303), ("null", 403), ("https://watcher.example.org.evil.example", 403)],
)
async def test_behind_a_proxy_forms_from_the_public_url_are_ours(web, origin, status):
    """A proxy may send its own Host (nginx's default): the Origin of public_url is still ours, nothing else is."""
    from watcher.web import access_for

    web.context.access = access_for("127.0.0.1", "", "https://watcher.example.org", {})
    transport = httpx.ASGITransport(app=build_app(web.context))
    # The proxy speaks TLS to the browser: cookies are Secure. It forwards the Host it was configured with.
    async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:9108") as client:
        page = Page(client, web.context)
        await page.get("/feeds")
        r = await page.post("/alerts/retry", {"channel": "inbox"}, headers={"origin": origin})
        assert r.status_code == status


@pytest.mark.parametrize("target, expected", [("/feeds", "/feeds"), ("//evil.example/", "/"), ("/\\evil.example", "/")])
async def test_the_login_only_sends_back_to_this_site(web, target, expected):
    web.context.access = Access(loopback=False, password="s3cret")
    transport = httpx.ASGITransport(app=build_app(web.context))
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:9108") as client:
        page = Page(client, web.context)
        await page.get("/login")
        r = await page.post("/login", {"password": "s3cret", "next": target})
        assert r.headers["location"] == expected


async def test_feeds_count_the_pages_that_could_not_be_read(web):
    store = web.context.store
    store.db.conn.execute("UPDATE articles SET body_source = 'feed-summary' WHERE url LIKE '%/troops'")
    r = await web.get("/feeds")
    world = r.text[r.text.index('data-feed="world"') :].split("</tr>")[0]
    assert '<td class="pages">1 of 3' in world and "the feed's own text stood in" in world
    asia = r.text[r.text.index('data-feed="asia"') :].split("</tr>")[0]
    assert '<td class="pages">0 of 2' in asia
