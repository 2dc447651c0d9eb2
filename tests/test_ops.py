"""Operations: the health verdict (pure, then from a real database), `status --check`, the metrics registry and its
Prometheus text, the HTTP endpoint over real sockets, the daemon serving both, and the database as a product:
the new views, the Datasette metadata and its canned queries, and `watcher serve` reading beside a writer."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from watcher.alerts.outbox import DispatchReport, SendOutcome
from watcher.cli import main
from watcher.config import config_from_dict
from watcher.metrics import METRICS_CONTENT_TYPE, POLL_BUCKETS, Metrics, Sample, gauges
from watcher.models import Article, Entry, FeedRecord, FeedUpdate, Match
from watcher.ops import (
    Health,
    HealthFacts,
    Response,
    assess_health,
    gather_facts,
    health_verdict,
    parse_address,
)
from watcher.pipeline import FeedOutcome
from watcher.store import Store

ROOT = Path(__file__).parent.parent
NOW = datetime.now(UTC).replace(microsecond=0)


def make_config(channels=None, feeds=("a", "b", "c"), **watcher):
    return config_from_dict(
        {
            "watcher": watcher,
            "feeds": [{"name": n, "url": f"https://{n}.example/feed"} for n in feeds],
            "topics": {"drones": {"rule": "drone*"}, "troops": {"rule": "troop*", "urgent": True}},
            "channels": channels or {"mail": {"type": "console", "mode": "digest"}},
        },
        "ops-test.toml",
    )


def open_store(path: Path, config, now=NOW) -> Store:
    store = Store.open(path)
    store.sync_feeds(config.feeds, config.schedule.interval, now)
    return store


def feed_id(store: Store, name: str) -> int:
    return store.db.conn.execute("SELECT id FROM feeds WHERE name = ?", (name,)).fetchone()[0]


def article(n: int, topics=("drones",), source="page") -> Article:
    url = f"https://news.example/{n}"
    entry = Entry("https://a.example/feed", f"e{n}", url, url, f"Drone story {n}")
    matches = tuple(Match(t, 1.0, ("drone",), "[[drone]] plant") for t in topics)
    return Article(url, f"Drone story {n}", "a drone plant and troops", source, entry, matches=matches)


def poll_result(store, name, now=NOW, *, status="ok", kind=None, articles=(), routes=None) -> None:
    update = FeedUpdate(
        f"https://{name}.example/feed",
        now,
        now + timedelta(minutes=15),
        status,
        error="it failed" if status == "error" else None,
        error_kind=kind,
        seen_entry_ids=tuple(a.entry.entry_id for a in articles),
        articles=tuple(articles),
    )
    store.apply_update(feed_id(store, name), update, routes or {})


# --- the verdict, pure ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "facts, status, reason",
    [
        (HealthFacts(), "ok", None),
        (HealthFacts(feeds_enabled=10, feeds_failing=2), "ok", "2 of 10 feeds failing"),
        (HealthFacts(feeds_enabled=10, feeds_failing=6), "degraded", "6 of 10 feeds failing"),
        (
            HealthFacts(feeds_enabled=4, offline=True, feeds_unreachable=4),
            "degraded",
            "offline: 4 of 4 feeds unreachable",
        ),
        (HealthFacts(feeds_enabled=4, feeds_failing=4), "failing", "4 of 4 feeds failing"),
        (HealthFacts(database_error="database is locked"), "failing", "database not writable: database is locked"),
        (HealthFacts(tick_age_s=200, tick_limit_s=90), "failing", "scheduler stalled: last tick 200 s ago"),
        (HealthFacts(tick_age_s=30, tick_limit_s=90), "ok", None),
        (
            HealthFacts(feeds_overdue=3, most_overdue_s=1500),
            "failing",
            "3 feed(s) overdue by up to 25 min (is the daemon running?)",
        ),
        (HealthFacts(feeds_overdue=3, most_overdue_s=1500, last_poll_age_s=700), "failing", "overdue"),
        (HealthFacts(feeds_overdue=1, most_overdue_s=1500, last_poll_age_s=30), "ok", None),
        (HealthFacts(late_alerts=2), "degraded", "2 alert(s) late"),
        (HealthFacts(dead_alerts=1), "degraded", "1 alert(s) failed for good"),
        (
            HealthFacts(config_error="2 problem(s)"),
            "degraded",
            "config file not loaded, the previous one is in use: 2 problem(s)",
        ),
    ],
    ids=[
        "quiet",
        "a-few-failing",
        "most-failing",
        "offline",
        "all-failing",
        "database",
        "tick-stalled",
        "tick-fine",
        "overdue",
        "overdue-and-idle",
        "overdue-but-polling",
        "late-alerts",
        "dead-alerts",
        "config-error",
    ],
)
def test_health_verdict(facts, status, reason):
    health = health_verdict(facts)
    assert health.status == status
    if reason is None:
        assert health.reasons == ()
    else:
        assert any(reason in r for r in health.reasons), health.reasons
    assert health.http_status == (503 if status == "failing" else 200)


def test_reasons_put_what_fails_first():
    health = health_verdict(
        HealthFacts(feeds_enabled=3, feeds_failing=1, dead_alerts=2, database_error="disk I/O error")
    )
    assert health.status == "failing"
    assert [r.split(":")[0].split(" ")[0] for r in health.reasons] == ["database", "2", "1"]
    assert health.line().startswith("failing: database not writable: disk I/O error; 2 alert(s)")


# --- the facts, from a real database ------------------------------------------------------------------------------


def test_an_offline_spell_is_the_network_s_fault_not_the_feeds(tmp_path):
    config = make_config()
    store = open_store(tmp_path / "w.db", config)
    # What network.py makes of a lost network: the first hosts fail (dns, connect), the next polls say "offline".
    poll_result(store, "a", NOW - timedelta(seconds=3), status="error", kind="dns")
    poll_result(store, "b", NOW - timedelta(seconds=2), status="error", kind="connect")
    poll_result(store, "c", NOW - timedelta(seconds=1), status="offline", kind="offline")
    facts = gather_facts(store, config, NOW)
    assert (facts.offline, facts.feeds_unreachable, facts.feeds_failing) == (True, 3, 0)
    assert health_verdict(facts) == Health("degraded", ("offline: 3 of 3 feeds unreachable (is the network down?)",))
    poll_result(store, "a", NOW)  # the first success anywhere ends the spell
    facts = gather_facts(store, config, NOW)
    assert (facts.offline, facts.feeds_failing) == (False, 1)  # b's connect error is its own again, until it is polled
    assert health_verdict(facts) == Health("ok", ("1 of 3 feeds failing",))


def test_every_feed_failing_while_the_network_works_is_failing(tmp_path):
    config = make_config()
    store = open_store(tmp_path / "w.db", config)
    for name, kind in (("a", "http"), ("b", "parse"), ("c", "dns")):
        poll_result(store, name, status="error", kind=kind)
    assert health_verdict(gather_facts(store, config, NOW)).status == "failing"


def test_feeds_long_overdue_with_no_poll_finishing_mean_no_scheduler(tmp_path):
    config = make_config()
    store = open_store(tmp_path / "w.db", config, NOW - timedelta(minutes=20))  # due 20 min ago, never polled
    facts = gather_facts(store, config, NOW)
    assert (facts.feeds_overdue, facts.most_overdue_s, facts.last_poll_age_s) == (3, 1200, None)
    assert health_verdict(facts).status == "failing"
    poll_result(store, "a", NOW - timedelta(seconds=5))  # something polls: b and c may be long polls in flight
    facts = gather_facts(store, config, NOW)
    assert (facts.feeds_overdue, facts.last_poll_age_s) == (2, 5)
    assert health_verdict(facts).status == "ok"
    assert health_verdict(gather_facts(store, config, NOW + timedelta(minutes=11))).status == "failing"  # and then not
    poll_result(store, "b")
    poll_result(store, "c")
    assert gather_facts(store, config, NOW).feeds_overdue == 0
    store.sync_feeds(config.feeds[:1], config.schedule.interval, NOW)  # b and c disabled: never "overdue"
    assert gather_facts(store, config, NOW + timedelta(minutes=14)).feeds_overdue == 0


def test_only_alerts_that_should_have_gone_count_as_late(tmp_path):
    config = make_config(
        {"now": {"type": "console", "mode": "immediate"}, "daily": {"type": "console", "mode": "digest"}}
    )
    created = NOW - timedelta(hours=1)
    store = open_store(tmp_path / "w.db", config, created)
    poll_result(
        store,
        "a",
        created,
        articles=[article(1, ("drones",)), article(2, ("troops",))],
        routes={"drones": ["now", "daily"], "troops": ["now", "daily"]},
    )
    facts = gather_facts(store, config, NOW)
    # now/drones, now/troops: immediate; daily/troops: urgent, so immediate too; daily/drones waits for its digest.
    assert facts.late_alerts == 3
    waiting = store.db.conn.execute(
        "SELECT id FROM deliveries WHERE channel = 'daily' AND topic = 'drones'"
    ).fetchone()[0]
    store.mark_retry([waiting], "SMTP 451", NOW)  # its digest went and failed: now it is late too
    assert gather_facts(store, config, NOW).late_alerts == 4
    assert gather_facts(store, config, created + timedelta(minutes=10)).late_alerts == 0  # too young to be late


def test_a_database_locked_by_another_writer_is_not_writable(tmp_path):
    store = Store.open(tmp_path / "w.db")
    assert store.probe_write() is None
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert "locked" in store.probe_write(timeout_s=0.1)
    finally:
        other.execute("ROLLBACK")
    assert store.probe_write() is None
    assert store.db.conn.execute("SELECT count(*) FROM channel_state").fetchone()[0] == 0  # the probe left nothing


async def test_healthz_answers_while_a_write_waits_for_a_lock_another_process_holds(tmp_path):
    """The hostile run: another process held BEGIN IMMEDIATE for 40 s and /healthz took 17-19 s. The store's calls
    run on its own thread and health reads on connections of their own, so the verdict comes while the write waits."""
    from watcher.daemon import Daemon

    config = make_config()
    store = open_store(tmp_path / "w.db", config)
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        write = asyncio.create_task(store.call(store.sync_feeds, config.feeds, config.schedule.interval, NOW))
        await asyncio.sleep(0)  # the write starts waiting (busy_timeout, 15 s) on the store's thread
        health = await Daemon(config, store).health()
        assert not write.done()  # the verdict did not queue behind the waiting write
        assert health.status == "failing" and "locked" in " ".join(health.reasons)
    finally:
        other.execute("ROLLBACK")
        other.close()
    await write  # and the write goes through once the lock is free
    assert (await Daemon(config, store).health()).status != "failing"
    store.close()


# --- `watcher status --check` gives the same verdict ---------------------------------------------------------------


def check(tmp_path, *args):
    return CliRunner().invoke(
        main,
        ["--config", str(tmp_path / "config.toml"), "--db", str(tmp_path / "w.db"), "status", "--check", *args],
        env={"WATCHER_CONFIG": None, "WATCHER_DB": None},
    )


def test_status_check_exit_codes_follow_the_verdict(tmp_path):
    (tmp_path / "config.toml").write_text(
        "[[feeds]]\nname = 'a'\nurl = 'https://a.example/feed'\n[[feeds]]\nname = 'b'\nurl = 'https://b.example/feed'\n"
    )
    config = make_config(feeds=("a", "b"))
    store = open_store(tmp_path / "w.db", config)
    poll_result(store, "a")
    poll_result(store, "b")
    result = check(tmp_path)
    assert (result.exit_code, result.output) == (0, "ok\n")
    poll_result(store, "a", status="error", kind="http")
    poll_result(store, "b", status="error", kind="http")
    result = check(tmp_path)
    assert (result.exit_code, result.output) == (1, "failing: 2 of 2 feeds failing\n")
    result = check(tmp_path, "--json")
    assert json.loads(result.output) == {"status": "failing", "reasons": ["2 of 2 feeds failing"]}
    assert assess_health(store, config, NOW) == Health("failing", ("2 of 2 feeds failing",))  # what /healthz says


def test_status_check_with_a_broken_config_still_answers(tmp_path):
    (tmp_path / "config.toml").write_text("[schedule]\ninterval = 'soon'\n")
    Store.open(tmp_path / "w.db").close()
    result = check(tmp_path)
    assert result.exit_code == 0
    assert result.output.startswith("degraded: config file not loaded")


# --- metrics -----------------------------------------------------------------------------------------------------

_LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})? (?P<value>[-+]?(\d+(\.\d+)?([eE][-+]?\d+)?|Inf))$"
)
_LABEL = re.compile(r'(?P<k>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<v>(?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus text format 0.0.4, checked as a scraper would: HELP and TYPE before each family, families whole."""
    assert text.endswith("\n")
    samples: dict[tuple[str, frozenset], float] = {}
    typed: dict[str, str] = {}
    finished: set[str] = set()
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, kind, name, rest = line.split(" ", 3)
            if kind == "TYPE":
                assert rest in ("counter", "gauge", "histogram") and name not in typed
                typed[name] = rest
            if current and current != name:
                finished.add(current)
            current = name
            continue
        m = _LINE.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m["name"]
        family = (
            re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(r"_(bucket|sum|count)$", "", name) in typed else name
        )
        assert family in typed and family == current and family not in finished, line
        labels = frozenset((k, v) for k, v in _LABEL.findall(m["labels"] or ""))
        value = float(m["value"].replace("Inf", "inf"))
        assert (name, labels) not in samples, f"duplicate series {line!r}"
        samples[(name, labels)] = value
    return samples


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def outcome(status="ok", *, articles=(), duration=0.3, kind=None, entries=5, queued=0) -> FeedOutcome:
    feed = FeedRecord(1, "a", "https://a.example/feed", timedelta(minutes=15))
    update = FeedUpdate(
        feed.url,
        NOW,
        NOW,
        status,
        error_kind=kind,
        seen_entry_ids=tuple(a.entry.entry_id for a in articles),
        articles=tuple(articles),
        duration_s=duration,
        entries_in_feed=entries,
    )
    return FeedOutcome(feed, update, queued)


def test_metrics_count_what_the_daemon_did(tmp_path):
    config = make_config()
    metrics = Metrics()
    metrics.seed(config)
    metrics.record_feed(outcome(articles=[article(1, ("drones", "troops")), article(2, (), "feed-summary")], queued=2))
    metrics.record_feed(outcome("not-modified", duration=0.01, entries=0))
    metrics.record_feed(outcome("error", kind="timeout", duration=30.5, entries=0))
    metrics.record_dispatch(
        DispatchReport((SendOutcome("mail", "digest", 3, "sent"), SendOutcome("mail", "immediate", 1, "retry", "451")))
    )
    store = open_store(tmp_path / "w.db", config)
    poll_result(store, "a", status="error", kind="dns")
    store.sync_feeds(config.feeds[:2], config.schedule.interval, NOW)
    s = parse_exposition(
        metrics.render(gauges(store, in_flight=1, last_tick_at=NOW, configured={f.name for f in config.feeds[:2]}))
    )

    assert [value(s, "watcher_feed_polls_total", status=st) for st in ("ok", "not-modified", "error", "offline")] == [
        1,
        1,
        1,
        0,
    ]
    assert value(s, "watcher_feed_errors_total", kind="timeout") == 1
    assert value(s, "watcher_feed_entries_total") == 5 and value(s, "watcher_new_entries_total") == 2
    assert value(s, "watcher_articles_total", body_source="page") == 1
    assert value(s, "watcher_articles_total", body_source="feed-summary") == 1
    assert (value(s, "watcher_matches_total", topic="drones"), value(s, "watcher_matches_total", topic="troops")) == (
        1,
        1,
    )
    assert value(s, "watcher_alerts_queued_total") == 2
    assert value(s, "watcher_deliveries_total", channel="mail", status="sent") == 3
    assert value(s, "watcher_deliveries_total", channel="mail", status="retry") == 1
    assert (
        value(s, "watcher_deliveries_total", channel="mail", status="dead") == 0
    )  # seeded: rate() works from the start
    buckets = {
        b: value(s, "watcher_poll_duration_seconds_bucket", le=str(int(b)) if b == int(b) else str(b))
        for b in POLL_BUCKETS
    }
    # Cumulative counts of the three polls: 0.01 s, 0.3 s and 30.5 s.
    assert buckets == {0.05: 1, 0.1: 1, 0.25: 1, 0.5: 2, 1.0: 2, 2.5: 2, 5.0: 2, 10.0: 2, 30.0: 2, 60.0: 3, 120.0: 3}
    assert value(s, "watcher_poll_duration_seconds_bucket", le="+Inf") == 3
    assert value(s, "watcher_poll_duration_seconds_count") == 3
    assert value(s, "watcher_poll_duration_seconds_sum") == pytest.approx(30.81)
    # The third feed was taken out of the config: removed, not disabled.
    assert [value(s, "watcher_feeds", state=st) for st in ("enabled", "failing", "disabled", "removed")] == [2, 1, 0, 1]
    assert value(s, "watcher_polls_in_flight") == 1
    assert value(s, "watcher_last_tick_timestamp_seconds") == NOW.timestamp()


def test_label_values_are_escaped():
    metrics = Metrics()
    metrics.inc("watcher_matches_total", topic='a "quoted"\\ topic\nwith a newline')
    text = metrics.render([Sample("watcher_info", 1, (("version", "1.0"),))])
    assert 'watcher_matches_total{topic="a \\"quoted\\"\\\\ topic\\nwith a newline"} 1\n' in text
    parse_exposition(text)


def test_outbox_gauges_show_pending_and_dead_per_channel(tmp_path):
    config = make_config()
    store = open_store(tmp_path / "w.db", config)
    poll_result(store, "a", articles=[article(1), article(2)], routes={"drones": ["mail", "hook"]})
    store.mark_dead([1], "refused")
    s = parse_exposition(Metrics().render(gauges(store)))
    assert value(s, "watcher_outbox_deliveries", channel="mail", status="dead") == 1
    assert value(s, "watcher_outbox_deliveries", channel="mail", status="pending") == 1
    assert value(s, "watcher_outbox_deliveries", channel="hook", status="pending") == 2


# --- the HTTP endpoint, over real sockets --------------------------------------------------------------------------


def http_get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy, whatever the environment
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


@pytest.fixture
async def endpoint(tmp_path):
    """The daemon's listener (web/server.py) with the page's application, answering /healthz from `health`."""
    from watcher.runtime import Runtime
    from watcher.web import Access, WebContext, WebServer, build_app

    health = {"value": Health("ok")}

    async def healthz():
        h = health["value"]
        if isinstance(h, Exception):
            raise h
        return Response(h.http_status, "application/json", json.dumps(h.as_dict()).encode())

    async def metrics():
        return Response(200, METRICS_CONTENT_TYPE, Metrics().render().encode())

    config = make_config()
    store = open_store(tmp_path / "watcher.db", config)
    async with Runtime(config) as runtime:
        context = WebContext(
            store, lambda: config, runtime, Access(loopback=True, password=None), healthz=healthz, metrics=metrics
        )
        server = WebServer("127.0.0.1:0", build_app(context))
        url = await server.start()
        yield server, url, health
        await server.close()
    store.close()


async def test_healthz_answers_json_with_200_or_503(endpoint):
    _, url, health = endpoint
    status, headers, body = await asyncio.to_thread(http_get, url + "/healthz")
    assert (status, headers["content-type"], json.loads(body)) == (
        200,
        "application/json",
        {"status": "ok", "reasons": []},
    )
    health["value"] = Health("failing", ("database not writable: disk I/O error",))
    status, _, body = await asyncio.to_thread(http_get, url + "/healthz?verbose=1")
    assert (status, json.loads(body)["reasons"]) == (503, ["database not writable: disk I/O error"])


async def test_metrics_answer_in_the_exposition_format(endpoint):
    server, url, _ = endpoint
    assert url == f"http://127.0.0.1:{server.port}" and server.port > 0
    status, headers, body = await asyncio.to_thread(http_get, url + "/metrics")
    assert (status, headers["content-type"]) == (200, "text/plain; version=0.0.4; charset=utf-8")
    assert headers["cache-control"] == "no-store"
    parse_exposition(body.decode())


# Host names loopback: the listener refuses other names on loopback (DNS rebinding; web/security.py).
@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", b"404"),
        (b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", b"405"),
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", b"500"),
        (b"HEAD /healthz HTTP/1.0\r\n\r\n", b"200"),
    ],
    ids=["unknown-path", "post", "garbage", "handler-bug", "head"],
)
async def test_odd_requests_get_plain_answers(endpoint, request_bytes, status, request):
    server, _, health = endpoint
    if request.node.callspec.id == "handler-bug":
        health["value"] = RuntimeError("a bug")
    answer = await raw_request(server.port, request_bytes)
    assert answer.split(b" ")[1] == status
    if request_bytes.startswith(b"HEAD"):
        assert answer.endswith(b"\r\n\r\n")  # headers only


async def test_a_client_that_sends_nothing_does_not_block_others(endpoint):
    server, url, _ = endpoint
    _, idle = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        status, _, _ = await asyncio.to_thread(http_get, url + "/healthz")
        assert status == 200
    finally:
        idle.close()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9108", ("::1", 9108)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9108", "127.0.0.1", "127.0.0.1:99999", "http://127.0.0.1:9108", "::1:9108", ""])
def test_parse_address_refuses(text):
    with pytest.raises(ValueError, match="127.0.0.1:9108"):
        parse_address(text)


def test_the_config_key_is_checked_like_the_option():
    assert make_config(http="127.0.0.1:9108").http == "127.0.0.1:9108"
    with pytest.raises(Exception, match=r"watcher.http: expected an address to listen on"):
        make_config(http="port 9108")


# --- the daemon serves both ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_daemon_serves_healthz_and_metrics(site, tmp_path):
    from tests.helpers.daemon_runner import CONFIG, Daemon
    from tests.helpers.news import serve_site

    serve_site(site)
    site.add("/error.xml", "no", status=500, content_type="text/plain")
    config = CONFIG.replace("{base}", site.url("")).replace(
        'database = "watcher.db"', 'database = "watcher.db"\nhttp = "127.0.0.1:0"'
    )
    (tmp_path / "config.toml").write_text(config)
    daemon = Daemon(tmp_path)
    try:
        url = re.search(r"listening on (http://\S+)", daemon.wait_for("ops endpoint listening on")).group(1)
        daemon.wait_for("feed world: ok")
        daemon.wait_for("feed broken-server: error")
        status, _, body = http_get(url + "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "reasons": ["1 of 2 feeds failing"]})
        status, _, body = http_get(url + "/metrics")
        s = parse_exposition(body.decode())
        assert value(s, "watcher_feed_polls_total", status="ok") == 1
        assert value(s, "watcher_feed_errors_total", kind="http") == 1
        assert value(s, "watcher_new_entries_total") == 3
        assert value(s, "watcher_matches_total", topic="drone_cooperation") == 1
        assert value(s, "watcher_poll_duration_seconds_count") == 2
        assert value(s, "watcher_feeds", state="failing") == 1
        assert value(s, "watcher_last_tick_timestamp_seconds") > 0
        assert daemon.stop() < 10
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert daemon.proc.returncode == 0


@pytest.mark.slow
def test_a_busy_port_stops_the_start_with_a_clear_error(tmp_path):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    (tmp_path / "config.toml").write_text("[extract]\nenabled = false\n")
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "watcher",
                "--config",
                str(tmp_path / "config.toml"),
                "run",
                "--http",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        taken.close()
    assert result.returncode == 2
    assert f"watcher.http: expected an address watcher can listen on, found '127.0.0.1:{port}' (" in result.stderr


# --- the database as a product: views, Datasette metadata, `watcher serve` --------------------------------------


def sample_store(path: Path) -> Store:
    config = make_config({"mail": {"type": "console"}})
    store = open_store(path, config)
    poll_result(
        store,
        "a",
        articles=[article(1, ("drones",)), article(2, ("drones", "troops"))],
        routes={"drones": ["mail"], "troops": ["mail"]},
    )
    # The same story carried by a second feed:
    store.apply_update(
        feed_id(store, "b"),
        FeedUpdate(
            "https://b.example/feed", NOW, NOW, "ok", also_seen_at=(("https://news.example/1", article(1).entry),)
        ),
        {},
    )
    store.mark_sent([1], NOW)
    store.mark_dead([2], "refused")
    poll_result(store, "c", status="error", kind="http")
    return store


METADATA = json.loads((ROOT / "watcher" / "datasette_metadata.json").read_text(encoding="utf-8"))
CANNED = METADATA["databases"]["watcher"]["queries"]
PARAMS = {"q": "drone", "topic": "drones"}


def test_every_table_and_view_is_described_for_datasette(tmp_path):
    store = sample_store(tmp_path / "w.db")
    described = METADATA["databases"]["watcher"]["tables"]
    names = [t for t in store.db.table_names() if not t.startswith("articles_fts_")] + store.db.view_names()
    assert sorted(described) == sorted(names)
    for name, meta in described.items():
        assert meta.get("description"), name
        columns = {c.name for c in (store.db[name] if name in store.db.table_names() else store.db.view(name)).columns}
        assert set(meta.get("columns", {})) <= columns, name
        for key in ("sort", "sort_desc", "fts_pk"):
            assert key not in meta or meta[key] in columns, (name, key)


def test_the_articles_table_is_searchable_in_datasette(tmp_path):
    store = sample_store(tmp_path / "w.db")
    meta = METADATA["databases"]["watcher"]["tables"]["articles"]
    fts, pk = meta["fts_table"], meta["fts_pk"]
    # Datasette shows its search box when it detects the FTS table (the same check as sqlite-utils' detect_fts)
    # or the metadata names it; `?_search=` then runs this filter (datasette/views/table.py):
    assert store.db["articles"].detect_fts() == fts
    search = f'SELECT title FROM articles WHERE "{pk}" IN (SELECT rowid FROM [{fts}] WHERE [{fts}] MATCH :search)'
    assert [r["title"] for r in store.db.query(search, {"search": "story 2"})] == ["Drone story 2"]
    assert list(store.db.query(search, {"search": "Kursk"})) == []  # not every row, as before


@pytest.mark.parametrize("name", list(CANNED))
def test_canned_queries_run_and_find_the_sample_data(tmp_path, name):
    store = sample_store(tmp_path / "w.db")
    sql = CANNED[name]["sql"]
    params = {p: PARAMS[p] for p in re.findall(r":(\w+)", sql)}
    rows = list(store.db.query(sql, params))
    assert rows, f"canned query {name} found nothing"


def test_views_answer_the_common_questions(tmp_path):
    store = sample_store(tmp_path / "w.db")
    log = list(store.db.query("SELECT id, channel, topic, status, title, url FROM delivery_log"))
    assert [(r["id"], r["status"], r["title"]) for r in log] == [
        (3, "pending", "Drone story 2"),
        (2, "dead", "Drone story 2"),
        (1, "sent", "Drone story 1"),
    ]
    day = NOW.strftime("%Y-%m-%d")
    assert list(store.db.query("SELECT * FROM topic_daily")) == [
        {"topic": "drones", "day": day, "matches": 2},
        {"topic": "troops", "day": day, "matches": 1},
    ]
    articles = {r["title"]: r for r in store.db.query("SELECT * FROM matched_articles")}
    assert articles["Drone story 2"]["topics"] == "drones, troops"
    assert sorted(articles["Drone story 1"]["feeds"].split(", ")) == ["a", "b"]


def test_a_reader_sees_the_views_while_a_write_is_open(tmp_path):
    store = sample_store(tmp_path / "w.db")
    reader = sqlite3.connect(f"file:{tmp_path / 'w.db'}?mode=ro", uri=True)  # how Datasette opens a mutable file
    store.db.conn.execute("BEGIN IMMEDIATE")
    store.db.conn.execute("DELETE FROM deliveries")  # not committed
    try:
        for view in ("latest_matches", "feed_health", "delivery_log", "topic_daily", "matched_articles"):
            assert reader.execute(f"SELECT count(*) FROM {view}").fetchone()[0] > 0, view
        assert reader.execute("SELECT count(*) FROM delivery_log").fetchone()[0] == 3  # the committed state
    finally:
        store.db.conn.execute("ROLLBACK")


def test_serve_without_datasette_says_how_to_install_it(tmp_path, monkeypatch):
    import watcher.cli.feeds

    real = watcher.cli.feeds.importlib.util.find_spec
    monkeypatch.setattr(
        watcher.cli.feeds.importlib.util, "find_spec", lambda name, *a: None if name == "datasette" else real(name, *a)
    )
    (tmp_path / "config.toml").write_text("")
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "config.toml"), "serve"], env={"WATCHER_DB": None})
    assert result.exit_code == 2
    assert "Datasette is not installed" in result.output and "pip install 'watcher[datasette]'" in result.output


@pytest.mark.slow
def test_serve_runs_datasette_with_the_metadata_beside_a_writer(tmp_path):
    pytest.importorskip("datasette.app")  # the installed package, not a folder named datasette on the path
    store = sample_store(tmp_path / "news.db")  # not "watcher.db": the metadata follows the file's name
    (tmp_path / "config.toml").write_text("[watcher]\ndatabase = 'news.db'\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(tmp_path / "config.toml"), "serve", "--port", "0"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        base = None
        for line in proc.stderr:  # uvicorn says where it listens; no sleeps
            if m := re.search(r"running on (http://127\.0\.0\.1:\d+)", line):
                base = m.group(1)
                break
        assert base, "Datasette did not start"
        store.db.conn.execute("BEGIN IMMEDIATE")  # the daemon in the middle of a write
        store.db.conn.execute("UPDATE feeds SET error_count = 99")
        try:
            status, _, body = http_get(base + "/news/delivery_log.json?_shape=array")
            assert status == 200 and [r["status"] for r in json.loads(body)] == ["pending", "dead", "sent"]
            status, _, body = http_get(base + "/news/search.json?_shape=array&q=drone")
            assert status == 200 and len(json.loads(body)) == 2
            status, _, body = http_get(base + "/news/feed_health.json?_shape=array")
            assert max(r["error_count"] for r in json.loads(body)) == 1  # the uncommitted 99 is not seen
            status, _, body = http_get(base + "/-/metadata.json")
            assert "delivery_log" in json.loads(body)["databases"]["news"]["tables"]
        finally:
            store.db.conn.execute("ROLLBACK")
        proc.send_signal(signal.SIGTERM)  # passed on to Datasette
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
