"""End to end against a real local site: feeds in five formats, article pages with clutter, a broken server.

Each test polls through the real fetcher, parser, extraction pool, matcher and store, then looks at rows.
"""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers.localsite import hang, reply
from tests.helpers.news import FEEDS, SITE, articles, make_config, poll_all, poll_feed_with, serve_site
from watcher.config import config_from_dict
from watcher.pipeline import Pipeline, poll
from watcher.runtime import Runtime
from watcher.workers import Workers


async def test_first_poll_stores_exactly_the_matching_articles_with_their_bodies(site, store, extractor):
    serve_site(site)
    config = make_config(site)
    outcomes = await poll_all(config, store, extractor)

    assert {name: o.update.status for name, o in outcomes.items()} == dict.fromkeys(FEEDS, "ok")
    stored = articles(store)
    # The drone-plant story is carried by two feeds under two titles; whichever feed came first names it.
    plant_title = store.db.execute(
        "SELECT title FROM articles WHERE url = ?", [site.url("/articles/drone-plant.html")]
    ).fetchone()[0]
    assert set(stored) == {
        plant_title,
        "Pyongyang sends thousands more troops to Russia's Kursk front",
        "North Korean troops pulled back from the front, officials say",
        "Iran and Russia agree to expand joint drone production",
        "Troops deployed to the border, says ministère",
        "Russia sends drone engineers & troops to Pyongyang",
    }
    plant = stored[plant_title]
    assert len(site.requests_to("/articles/drone-plant.html")) == 1
    assert plant["body_source"] == "page"
    assert "Yelabuga" in plant["body"]
    for clutter in ("COMMENT-MARKER", "ADVERTISEMENT", "Subscribe now", "Most read", "Copyright"):
        assert clutter not in plant["body"]
    # Tracking parameters are gone from the article's identity.
    assert plant["url"] == site.url("/articles/drone-plant.html")

    gone = stored["North Korean troops pulled back from the front, officials say"]
    assert gone["body_source"] == "feed-summary" and "withdrawn from the front line" in gone["body"]
    latin = stored["Troops deployed to the border, says ministère"]
    assert latin["body_source"] == "page"

    matches = {
        (r["title"], r["topic"])
        for r in store.db.query("SELECT a.title, m.topic FROM matches m JOIN articles a ON a.id = m.article_id")
    }
    assert ("Russia sends drone engineers & troops to Pyongyang", "drone_cooperation") in matches
    assert ("Russia sends drone engineers & troops to Pyongyang", "troop_deployment") in matches
    terms = json.loads(
        store.db.execute(
            "SELECT terms FROM matches m JOIN articles a ON a.id = m.article_id WHERE a.title LIKE 'Iran%'"
        ).fetchone()[0]
    )
    assert terms and all(isinstance(t, str) for t in terms)

    # Unmatched articles are not kept as matches, but every entry id is remembered.
    assert "Seoul braces for the first snow of the winter" not in stored
    assert store.db.execute("SELECT count(*) FROM seen_entries").fetchone()[0] == 9
    # The broken feed parsed with a warning, and that is visible.
    assert outcomes["broken"].update.warning


async def test_the_first_poll_of_a_feed_does_not_alert_but_later_polls_do(site, store, extractor):
    serve_site(site)
    config = make_config(site, feeds={"world": "/world.rss"})
    await poll_all(config, store, extractor)
    assert store.counts()["pending"] == 0 and store.counts()["matches"] == 2

    new_item = """<item><title>Russia to supply drone parts to North Korea factory</title>
      <link>{base}/articles/iran-drones.html</link><guid>world-2000</guid></item></channel>"""
    body = (SITE / "world.rss").read_text().replace("</channel>", new_item).replace("{base}", site.url(""))
    site.add("/world.rss", body, content_type="application/rss+xml")
    await poll_all(config, store, extractor)
    pending = store.pending_deliveries("inbox", datetime.now(UTC) + timedelta(minutes=1))
    assert [d.title for d in pending] == ["Russia to supply drone parts to North Korea factory"]


async def test_second_poll_is_conditional_and_stores_nothing_new(site, store, extractor):
    serve_site(site)
    config = make_config(site)
    await poll_all(config, store, extractor)
    before = store.db.execute("SELECT count(*) FROM articles").fetchone()[0]
    site.requests.clear()

    outcomes = await poll_all(config, store, extractor)
    assert {o.update.status for o in outcomes.values()} == {"not-modified"}
    feed_requests = [r for r in site.requests if not r.path.startswith("/articles/")]
    assert len(feed_requests) == len(FEEDS)
    assert all("if-none-match" in r.headers for r in feed_requests)
    assert not [r for r in site.requests if r.path.startswith("/articles/")]  # no page fetched again
    assert store.db.execute("SELECT count(*) FROM articles").fetchone()[0] == before


async def test_duplicate_across_feeds_and_moved_item_are_stored_once(site, store, extractor):
    serve_site(site)
    config = make_config(site, feeds={"world": "/world.rss", "asia": "/asia.atom"})
    await poll_all(config, store, extractor)
    rows = list(
        store.db.query(
            "SELECT a.id, count(s.feed_id) AS sources FROM articles a JOIN article_sources s ON s.article_id = a.id"
            " WHERE a.url = ? GROUP BY a.id",
            [site.url("/articles/drone-plant.html")],
        )
    )
    assert len(rows) == 1 and rows[0]["sources"] == 2
    assert len(site.requests_to("/articles/drone-plant.html")) == 1  # fetched once, not once per feed

    # The feed rewrites every GUID (a CMS migration): the same URLs must not become new articles or alerts.
    rewritten = (SITE / "world.rss").read_text().replace("world-100", "cms2-world-100").replace("{base}", site.url(""))
    rewritten = rewritten.replace("<guid>" + site.url("/articles/troops-kursk.html"), "<guid>cms2-troops")
    site.add("/world.rss", rewritten, content_type="application/rss+xml")
    before_articles = store.db.execute("SELECT count(*) FROM articles").fetchone()[0]
    outcome = (await poll_all(config, store, extractor, names=["world"]))["world"]
    assert len(outcome.update.seen_entry_ids) == 3  # new ids, remembered ...
    assert store.db.execute("SELECT count(*) FROM articles").fetchone()[0] == before_articles  # ... but no new articles
    assert store.counts()["pending"] == 0


async def test_failing_feeds_are_recorded_and_backed_off_while_others_succeed(site, store, extractor):
    serve_site(site)
    site.add("/error.xml", "oops", status=500, content_type="text/plain")
    site.add("/slow.xml", handler=hang)
    config = make_config(site, feeds={"world": "/world.rss", "error": "/error.xml", "slow": "/slow.xml"})
    now = datetime.now(UTC)
    outcomes = await poll_all(config, store, extractor, now=now)

    assert outcomes["world"].update.status == "ok"
    assert outcomes["error"].update.status == "error" and "500" in outcomes["error"].update.error
    assert outcomes["slow"].update.status == "error" and outcomes["slow"].update.error_kind == "timeout"
    status = {r["name"]: r for r in store.feed_status()}
    assert status["error"]["error_count"] == 1 and status["slow"]["error_count"] == 1
    assert status["world"]["error_count"] == 0

    # Back-off: the second failure waits longer than the first.
    first_delay = outcomes["error"].update.next_check_at - now
    later = now + timedelta(hours=1)
    again = await poll_all(config, store, extractor, now=later, names=["error"])
    second_delay = again["error"].update.next_check_at - later
    assert second_delay > first_delay * 1.5
    assert {r["name"]: r for r in store.feed_status()}["error"]["error_count"] == 2


async def test_a_feed_without_extraction_uses_its_own_text(site, store, extractor):
    serve_site(site)
    data_feeds = {"json": "/feed.json"}
    config = make_config(site, feeds=data_feeds)
    config = config.__class__(
        **{
            **{f: getattr(config, f) for f in config.__dataclass_fields__},
            "feeds": (config.feeds[0].__class__(config.feeds[0].name, config.feeds[0].url, extract=False),),
        }
    )
    await poll_all(config, store, extractor)
    [row] = articles(store).values()
    assert row["body_source"] == "feed-content"
    assert site.requests_to("/articles/iran-drones.html") == []


async def test_network_down_for_every_feed_is_offline_not_every_feed_broken(site, store, extractor):
    # Five feeds on five loopback hosts where nothing listens: every one fails to connect, as when the
    # machine's network is down.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # bound, never listening: connections are refused
        data = {
            "fetch": {"allow_networks": ["127.0.0.0/8"], "timeout": "3s"},
            "feeds": [{"name": f"f{i}", "url": f"http://127.0.0.{i + 2}:{closed_port}/feed.xml"} for i in range(5)],
            "topics": {"t": {"rule": "drone"}},
        }
        config = config_from_dict(data)
        now = datetime.now(UTC)
        store.sync_feeds(config.feeds, config.schedule.interval, now)
        async with Runtime(config, workers=extractor) as runtime:
            pipeline = Pipeline.build(config, store, runtime)
            pipeline.clock = lambda: now
            # One at a time, so the order is known: the first failures count, then watcher sees a pattern.
            outcomes = [(await poll(pipeline, [feed]))[0] for feed in store.due_feeds(now)]

    statuses = [o.update.status for o in outcomes]
    assert statuses == ["error", "error", "offline", "offline", "offline"]  # as each poll saw it at the time
    # Once the outage is recognised, its first two failures are recorded as offline too: one outage, one status.
    rows = {r["name"]: r for r in store.feed_status()}
    assert [rows[f"f{i}"]["error_count"] for i in range(5)] == [0, 0, 0, 0, 0]
    assert {r["last_status"] for r in rows.values()} == {"offline"}
    assert "offline" not in rows["f4"]["last_error"]  # the status says it; the error keeps its own words
    # An offline feed keeps its plain interval: no back-off for the network's fault.
    assert outcomes[4].update.next_check_at - now <= config.schedule.interval * 1.2


async def test_a_private_feed_is_polled_with_its_token_which_is_never_stored(site, sqlite_store, extractor, tmp_path):
    store = sqlite_store  # the test reads the file's bytes
    serve_site(site)
    world = site.routes["/world.rss"]

    def needs_token(handler):
        if "token=s3cr3t-t0ken" not in handler.path:
            return handler.send_bytes(403, b"forbidden", {"content-type": "text/plain"})
        handler.send_bytes(200, world.body, {"content-type": "application/rss+xml"})

    site.add("/private.rss", handler=needs_token)
    config = make_config(site, feeds={"private": "/private.rss?token=s3cr3t-t0ken"})
    outcomes = await poll_all(config, store, extractor)
    assert outcomes["private"].update.status == "ok"
    assert store.counts()["matches"] == 2
    store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("watcher.db*"))
    assert b"s3cr3t-t0ken" not in raw


async def test_a_runaway_page_is_stopped_and_the_item_keeps_the_feeds_text(site, store):
    from tests.helpers.misbehaving_extract import runs_away_on_marked_pages

    serve_site(site)
    page = site.routes["/articles/drone-plant.html"]
    site.add(
        "/articles/drone-plant.html", page.body.replace(b"<article>", b"<article>RUNAWAY"), content_type="text/html"
    )
    await poll_feed_with(site, store, "world", "/world.rss", timeout_s=1.0, function=runs_away_on_marked_pages)
    bodies = {r["url"]: r for r in store.db.query("SELECT url, body_source, body FROM articles")}
    stuck = bodies[site.url("/articles/drone-plant.html")]
    assert stuck["body_source"] == "feed-summary" and "joint factory" in stuck["body"]
    assert bodies[site.url("/articles/troops-kursk.html")]["body_source"] == "page"  # the others still extracted


BYLINES = """<?xml version="1.0"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Bylines</title>
<item><title>North Korea and Russia to co-produce attack drones at a new plant</title>
  <link>{base}/articles/drone-plant.html</link><guid>bylines-1</guid>
  <dc:creator>Kim Reporter</dc:creator><pubDate>Wed, 25 Nov 2026 08:30:00 GMT</pubDate></item>
<item><title>Pyongyang sends thousands more troops to Russia's Kursk front</title>
  <link>{base}/articles/troops-kursk.html</link><guid>bylines-2</guid>
  <pubDate>Wed, 25 Nov 2026 06:00:00 GMT</pubDate></item>
</channel></rss>"""


async def test_the_page_is_searched_for_title_author_and_date_only_when_the_entry_lacks_one(site, store):
    # Looking for them is more than a third of a page's extraction (watcher/extract.py); an entry's own come first.
    from tests.helpers.misbehaving_extract import says_whether_metadata_was_asked

    serve_site(site)
    site.add(
        "/bylines.rss", BYLINES.replace("{base}", f"http://127.0.0.1:{site.port}"), content_type="application/rss+xml"
    )
    await poll_feed_with(site, store, "bylines", "/bylines.rss", timeout_s=20, function=says_whether_metadata_was_asked)
    rows = {r["url"]: r for r in store.db.query("SELECT url, author, body FROM articles")}
    signed = rows[site.url("/articles/drone-plant.html")]
    assert signed["author"] == "Kim Reporter" and signed["body"].endswith("METADATA-SPARED")
    unsigned = rows[site.url("/articles/troops-kursk.html")]  # no byline in the feed: the page's meta tag
    assert unsigned["author"] == "Test Correspondent" and unsigned["body"].endswith("METADATA-ASKED")


async def test_compressed_pages_are_read_in_the_worker_and_a_page_bomb_keeps_the_feeds_text(site, store, extractor):
    # Pages cross to the extraction worker as they arrived (body.py); the decoded cap holds there.
    serve_site(site)
    troops = site.routes["/articles/troops-kursk.html"]
    site.add("/articles/troops-kursk.html", troops.body, content_type="text/html", gzip=True)
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb_body = b"".join(bomb.compress(bytes(2**20)) for _ in range(8)) + bomb.flush()
    site.add(
        "/articles/drone-plant.html",
        handler=reply(200, bomb_body, {"content-type": "text/html", "content-encoding": "gzip"}),
    )
    config = make_config(site, feeds={"world": "/world.rss"}, fetch={"max_page_mb": 1})
    outcomes = await poll_all(config, store, extractor)
    assert outcomes["world"].update.status == "ok"
    bodies = {r["url"]: r for r in store.db.query("SELECT url, body_source, body FROM articles")}
    assert bodies[site.url("/articles/troops-kursk.html")]["body_source"] == "page"
    bombed = bodies[site.url("/articles/drone-plant.html")]
    assert bombed["body_source"] == "feed-summary" and "joint factory" in bombed["body"]
    pages = {a.url: a.page_outcome for a in outcomes["world"].update.articles}
    assert pages[site.url("/articles/drone-plant.html")] == "failed"
    assert pages[site.url("/articles/troops-kursk.html")] == "ok"


async def test_matching_runs_off_the_event_loop_and_a_runaway_match_is_stopped_at_its_time_limit(site, store, caplog):
    """Feed text reaches the matcher too: a match that runs away (a text or rule we did not foresee) is stopped at
    the workers' time limit, the article is kept unmatched, the others match, and the loop keeps running meanwhile.
    The feed's articles go to the worker together first; that call fails, and each is matched on its own."""
    import asyncio
    import logging

    caplog.set_level(logging.DEBUG, logger="watcher.poll")

    from tests.helpers.misbehaving_extract import matching_runs_away_on_marked_titles

    serve_site(site)
    world = site.routes["/world.rss"]
    site.add(
        "/world.rss",
        world.body.replace(b"<title>North Korea and Russia", b"<title>RUNAWAY North Korea and Russia"),
        content_type="application/rss+xml",
    )
    config = make_config(site, feeds={"world": "/world.rss"}, extract={"enabled": False})
    workers = Workers(workers=1, timeout_s=1.0, matcher=matching_runs_away_on_marked_titles)
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0.01)

    beating = asyncio.create_task(heartbeat())
    try:
        outcomes = await poll_all(config, store, workers)
        beats_during_poll = beats
    finally:
        beating.cancel()
        workers.shutdown()
    assert outcomes["world"].update.status == "ok"
    assert beats_during_poll >= 20  # the loop ran all through the one-second stall (a blocked loop beats once)
    rows = {r["title"]: r["matched"] for r in store.db.query("SELECT title, matched FROM articles")}
    assert rows["RUNAWAY North Korea and Russia to co-produce attack drones at a new plant"] == 0
    assert rows["Pyongyang sends thousands more troops to Russia's Kursk front"] == 1  # the others still match
    assert "matching 3 articles took longer than 1 s; matching its articles one by one" in caplog.text
    assert "matching took longer than 1 s" in caplog.text


async def test_with_extraction_a_runaway_match_in_the_one_worker_call_is_stopped_and_the_item_kept(site, store, caplog):
    """Extraction and matching share one worker call and one time limit: a runaway match there is stopped, the
    article falls back to the feed's text (matched on its own, stopped again) and is kept unmatched; others match."""
    from tests.helpers.misbehaving_extract import matching_runs_away_on_marked_titles

    serve_site(site)
    world = site.routes["/world.rss"]
    site.add(
        "/world.rss",
        world.body.replace(b"<title>North Korea and Russia", b"<title>RUNAWAY North Korea and Russia"),
        content_type="application/rss+xml",
    )
    await poll_feed_with(site, store, "world", "/world.rss", timeout_s=1.0, matcher=matching_runs_away_on_marked_titles)
    rows = {r["title"]: r for r in store.db.query("SELECT title, matched, body_source FROM articles")}
    stuck = rows["RUNAWAY North Korea and Russia to co-produce attack drones at a new plant"]
    assert stuck["matched"] == 0 and stuck["body_source"] == "feed-summary"
    others = rows["Pyongyang sends thousands more troops to Russia's Kursk front"]
    assert others["matched"] == 1 and others["body_source"] == "page"  # extracted and matched in one call
    assert "matching took longer than 1 s" in caplog.text


async def test_a_full_disk_loses_nothing_and_recovers_when_space_returns(site, sqlite_store, extractor, caplog):
    store = sqlite_store  # SQLite's max_page_count stands in for a full disk
    serve_site(site)
    long_story = "<p>" + "North Korean engineers are helping Russia produce drones at the new factory. " * 800 + "</p>"
    page = site.routes["/articles/drone-plant.html"]
    site.add(
        "/articles/drone-plant.html",
        page.body.replace(b"<article>", b"<article>" + long_story.encode()),
        content_type="text/html",
    )
    config = make_config(site, feeds={"world": "/world.rss"})
    store.sync_feeds(config.feeds, config.schedule.interval, datetime.now(UTC))
    # SQLite's own "database or disk is full" (SQLITE_FULL), as on a full disk: no page may be added.
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    outcomes = await poll_all(config, store, extractor)
    assert outcomes["world"].update.status == "error" and outcomes["world"].update.error_kind == "store"
    assert "disk is full" in outcomes["world"].update.error
    assert any("not saved" in r.message for r in caplog.records)
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.due_feeds(datetime.now(UTC)), "the feed is still due: nothing of the failed poll was written"

    store.db.execute("PRAGMA max_page_count = 1073741823")  # space returns
    site.requests.clear()
    outcomes = await poll_all(config, store, extractor)
    assert outcomes["world"].update.status == "ok"
    assert store.counts()["matches"] == 2


async def test_a_feed_that_drops_all_its_items_deletes_nothing(site, store, extractor):
    serve_site(site)
    config = make_config(site, feeds={"world": "/world.rss"})
    await poll_all(config, store, extractor)
    site.add(
        "/world.rss",
        "<rss version='2.0'><channel><title>Test World Desk</title></channel></rss>",
        content_type="application/rss+xml",
    )
    outcome = (await poll_all(config, store, extractor))["world"]
    assert outcome.update.status == "ok" and outcome.update.entries_in_feed == 0
    assert store.counts()["matches"] == 2  # an empty response is not "everything was deleted"


async def test_feeds_in_flight_are_capped_so_memory_does_not_grow_with_the_feed_count(
    site, store, extractor, monkeypatch
):
    import watcher.pipeline as pipeline_module

    serve_site(site)
    feeds = {f"f{i}": f"/world.rss?copy={i}" for i in range(30)}
    config = make_config(site, feeds=feeds, fetch={"concurrency": 2, "per_host": 2})
    active, most = 0, 0
    real_update_feed = pipeline_module.update_feed

    async def counting(pipeline, feed):
        nonlocal active, most
        active += 1
        most = max(most, active)
        try:
            return await real_update_feed(pipeline, feed)
        finally:
            active -= 1

    monkeypatch.setattr(pipeline_module, "update_feed", counting)
    outcomes = await poll_all(config, store, extractor)
    assert len(outcomes) == 30 and {o.update.status for o in outcomes.values()} == {"ok"}
    assert 2 <= most <= 2 * config.fetch.concurrency  # 30 feeds due at once, never more than 4 between fetch and write


@pytest.mark.slow
async def test_max_feed_mb_above_the_parsers_default_is_the_limit_that_holds(site, store, extractor):
    """`max_feed_mb = 20` used to meet the parser's fixed 16 MB limit silently; the config's limit holds now."""
    big = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title><!--'
        + b" " * (17 * 2**20)
        + b"--><item><title>Drone plant opens</title><guid>big-1</guid><description>drone factory</description>"
        + b"</item></channel></rss>"
    )
    site.add("/big.rss", big, content_type="application/rss+xml")
    config = make_config(site, feeds={"big": "/big.rss"}, fetch={"max_feed_mb": 20}, extract={"enabled": False})
    outcomes = await poll_all(config, store, extractor)
    assert outcomes["big"].update.status == "ok", outcomes["big"].update.error
    assert outcomes["big"].update.entries_in_feed == 1


def test_a_page_text_that_opens_with_the_headline_is_stored_without_it():
    from watcher.extract import _without_headline

    title = "Drone Parts Came From Europe, Investigators Say"
    assert _without_headline(f"{title}\n\nWhen Western researchers...", title) == "When Western researchers..."
    assert _without_headline("DRONE PARTS  came from Europe, investigators say\nText", title) == "Text"
    assert _without_headline("When Western researchers...\nMore", title) == "When Western researchers...\nMore"
