"""The store: schema, one transaction per feed update, the outbox's unique key, and readers beside a writer."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from watcher.config import FeedConfig
from watcher.models import Article, Entry, FeedUpdate, Match
from watcher.store import Store
from watcher.store.migrations import MIGRATIONS

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


FEEDS = [FeedConfig("a", "https://a.example/feed"), FeedConfig("b", "https://b.example/feed")]


@pytest.fixture
def store(store):
    """Each backend's store (conftest.py) with two feeds."""
    store.sync_feeds(FEEDS, timedelta(minutes=15), NOW)
    return store


@pytest.fixture
def sqlite_store(sqlite_store):
    sqlite_store.sync_feeds(FEEDS, timedelta(minutes=15), NOW)
    return sqlite_store


def feed_id(store, name):
    return store.db.conn.execute("SELECT id FROM feeds WHERE name = ?", (name,)).fetchone()[0]


def article(url="https://news.example/a1", topics=("t",), entry_id="e1", feed_url="https://a.example/feed"):
    entry = Entry(feed_url=feed_url, entry_id=entry_id, url=url, link=url, title="Drones")
    matches = tuple(Match(t, 1.0, ("drone",), "[[drone]] plant") for t in topics)
    return Article(url=url, title="Drones", body="drone plant", body_source="page", entry=entry, matches=matches)


def update(articles=(), seen=("e1",), status="ok", alert=True, **kw):
    return FeedUpdate(
        feed_url="https://a.example/feed",
        checked_at=NOW,
        next_check_at=NOW + timedelta(minutes=15),
        status=status,
        seen_entry_ids=seen,
        articles=tuple(articles),
        alert=alert,
        **kw,
    )


def test_open_sets_durability_pragmas(sqlite_store):
    store = sqlite_store
    health = store.health(check_integrity=True)
    assert (health.journal_mode, health.synchronous, health.foreign_keys) == ("wal", "NORMAL", True)
    assert health.busy_timeout_ms >= 5000
    assert health.integrity == "ok"
    assert health.schema_version == len(MIGRATIONS)


def test_reopening_does_not_migrate_twice(tmp_path):
    Store.open(tmp_path / "w.db").close()
    again = Store.open(tmp_path / "w.db")
    assert again.schema_version() == len(MIGRATIONS)


def test_sync_feeds_adds_updates_and_disables(store):
    store.sync_feeds(
        [FeedConfig("a", "https://a.example/new", interval=timedelta(hours=1))], timedelta(minutes=15), NOW
    )
    rows = {r["name"]: r for r in store.feed_status()}
    assert rows["a"]["url"] == "https://a.example/new"
    assert rows["b"]["enabled"] == 0  # removed from the config: kept, but not polled
    assert [f.name for f in store.due_feeds(NOW)] == ["a"]
    assert store.due_feeds(NOW)[0].interval == timedelta(hours=1)


def test_update_writes_article_match_and_deliveries_together(store):
    queued = store.apply_update(feed_id(store, "a"), update([article()]), {"t": ("mail", "slack")})
    assert queued == 2
    assert store.seen_entry_ids(feed_id(store, "a"), ["e1", "e2"]) == {"e1"}
    assert [d.channel for d in store.pending_deliveries("mail", NOW)] == ["mail"]
    rows = list(store.db.query("SELECT topic, terms, snippet FROM latest_matches"))
    assert rows == [{"topic": "t", "terms": '["drone"]', "snippet": "[[drone]] plant"}]


def test_known_entries_says_what_a_poll_need_not_fetch_again(store):
    store.apply_update(feed_id(store, "a"), update([article()]), {})  # e1, at https://news.example/a1
    asked = [("e1", "https://news.example/a1"), ("e2", "https://news.example/new")]
    # Feed a has seen e1, so e1's URL (stored) is not even asked about; e2 is new and not stored: to fetch.
    assert store.known_entries(feed_id(store, "a"), asked) == ({"e1"}, set())
    # Feed b has seen neither; e1's article is stored already: b becomes one more source of it, no fetch.
    assert store.known_entries(feed_id(store, "b"), asked) == (set(), {"https://news.example/a1"})


def test_the_same_alert_cannot_be_queued_twice(store):
    routes = {"t": ("mail",)}
    store.apply_update(feed_id(store, "a"), update([article()]), routes)
    # The same article reaching us again (another feed, a re-poll, a rematch) queues nothing new.
    again = store.apply_update(feed_id(store, "b"), update([article(entry_id="other")], seen=("other",)), routes)
    assert again == 0
    assert store.db.conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 1
    assert store.db.conn.execute("SELECT count(*) FROM article_sources").fetchone()[0] == 2


def test_an_article_reaching_us_again_keeps_its_story_and_is_not_placed_again(store):
    store.apply_update(feed_id(store, "a"), update([article()]), {})
    first = store.db.conn.execute("SELECT story_id, story_terms FROM articles").fetchone()
    keys = store.db.conn.execute("SELECT count(*) FROM story_keys").fetchone()[0]
    store.apply_update(feed_id(store, "b"), update([article(entry_id="other")], seen=("other",)), {})
    assert store.db.conn.execute("SELECT story_id, story_terms FROM articles").fetchall() == [first]
    assert store.db.conn.execute("SELECT count(*) FROM stories").fetchone()[0] == 1
    assert store.db.conn.execute("SELECT count(*) FROM story_keys").fetchone()[0] == keys > 0
    # Its terms were counted once: the second write added none to the counts kept in memory.
    assert store._uncounted is not None and store._uncounted[""] == 1
    # Both feeds are its sources, and the story says so.
    assert store.db.conn.execute("SELECT sources FROM stories").fetchone()[0] == 2


def test_first_poll_records_without_alerting(store):
    assert store.apply_update(feed_id(store, "a"), update([article()], alert=False), {"t": ("mail",)}) == 0
    assert store.counts()["matches"] == 1


def test_errors_count_up_and_a_success_resets(store):
    fid = feed_id(store, "a")
    for _ in range(3):
        store.apply_update(fid, update(status="error", seen=(), error="HTTP 500", error_kind="http"), {})
    record = store.due_feeds(NOW + timedelta(hours=1), names=["a"])[0]
    assert record.error_count == 3
    store.apply_update(fid, update(seen=()), {})
    row = store.feed_status()[0]
    assert (row["error_count"], row["last_error"], row["last_status"]) == (0, None, "ok")


def test_a_failed_transaction_leaves_nothing_behind(store):
    # NOT NULL title: the second insert fails, after the first article was written and placed in a story.
    broken = update([article(), dataclasses.replace(article(url="https://news.example/z", entry_id="e2"), title=None)])
    with pytest.raises(Exception):
        store.apply_update(feed_id(store, "a"), broken, {"t": ("mail",)})
    assert store.counts()["matches"] == 0
    assert store.seen_entry_ids(feed_id(store, "a"), ["e1"]) == set()
    assert not store._uncounted  # the story term counts of the rolled-back articles are not kept either


def test_writes_succeed_while_a_reader_holds_a_long_transaction(sqlite_store, tmp_path):
    store = sqlite_store
    reader = sqlite3.connect(tmp_path / "watcher.db")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM articles").fetchone()  # a Datasette-like open read
    store.apply_update(feed_id(store, "a"), update([article()]), {})
    reader.rollback()
    assert store.counts()["matches"] == 1


def test_a_second_sqlite_writer_waits_instead_of_failing(sqlite_store):
    store = sqlite_store
    other = store.open_another()
    with store._write():
        done = threading.Event()

        def write_from_other():
            other.apply_update(
                feed_id(other, "b"), update([article(url="https://news.example/x", entry_id="x")], seen=("x",)), {}
            )
            done.set()

        thread = threading.Thread(target=write_from_other)
        thread.start()
        assert not done.wait(0.3)  # blocked on our write lock, not failed
    thread.join(10)
    assert done.is_set()
    other.close()


def test_fts_index_follows_articles(sqlite_store):
    store = sqlite_store
    store.apply_update(feed_id(store, "a"), update([article()]), {})
    hits = store.db.conn.execute("SELECT rowid FROM articles_fts WHERE articles_fts MATCH 'plant'").fetchall()
    assert len(hits) == 1


def matched_article(slug, title, body):
    url = f"https://news.example/{slug}"
    entry = Entry(feed_url="https://a.example/feed", entry_id=slug, url=url, link=None, title=title)
    return Article(url, title, body, "page", entry, matches=(Match("t", 1.0, ("drone",), "drone"),))


def test_search_finds_forms_of_a_word_and_ranks_title_hits_first(store):
    articles = [
        matched_article("body", "Weekly roundup", "A factory will build drones near the border."),
        matched_article("title", "Drone factories expand", "The plant in the east builds a drone a day."),
        # Words found in every article weigh nothing in a ranking: the others make these two rare.
        *(matched_article(f"other{i}", f"Harvest report {i}", "Wheat and barley prices rose.") for i in range(4)),
    ]
    store.apply_update(feed_id(store, "a"), update(articles, seen=tuple(a.entry.entry_id for a in articles)), {})
    hits = store.search("drone factory")
    assert [h["url"] for h in hits] == ["https://news.example/title", "https://news.example/body"]
    assert "[[" in hits[0]["snippet"] and hits[0]["feeds"] == "a" and hits[0]["topics"] == "t"
    assert [h["url"] for h in store.search('"drone factories" NOT roundup')] == ["https://news.example/title"]
    assert store.search("tank OR submarine") == []


def test_outbox_lifecycle(store):
    store.apply_update(feed_id(store, "a"), update([article()]), {"t": ("mail",)})
    [delivery] = store.pending_deliveries("mail", NOW)
    store.mark_retry([delivery.id], "421 try later", NOW + timedelta(minutes=5))
    assert store.pending_deliveries("mail", NOW) == []
    assert len(store.pending_deliveries("mail", NOW + timedelta(minutes=5))) == 1
    store.mark_dead([delivery.id], "550 no such user")
    assert store.counts()["dead"] == 1
    assert store.retry_dead(NOW, channel="mail") == 1
    store.mark_sent([delivery.id], NOW)
    assert store.pending_deliveries("mail", NOW + timedelta(days=1)) == []


def test_purge_unmatched_keeps_matched(store):
    store.apply_update(
        feed_id(store, "a"),
        update([article(), article(url="https://news.example/u", topics=(), entry_id="u")], seen=("e1", "u")),
        {},
    )
    assert store.purge_unmatched(NOW + timedelta(days=4)) == 1
    assert store.counts()["articles"] == 1
    assert store.seen_entry_ids(feed_id(store, "a"), ["u"]) == {"u"}  # still seen: never fetched again


@pytest.mark.parametrize(
    "url, stored",
    [
        ("https://user:pa55@feeds.example/private.xml", "https://feeds.example/private.xml"),
        ("https://feeds.example/rss?token=abc123&cat=world", "https://feeds.example/rss?token=***&cat=world"),
        (
            "https://feeds.example/rss?api_key=k&access-token=t&page=2",
            "https://feeds.example/rss?api_key=***&access-token=***&page=2",
        ),
        ("https://feeds.example/rss?category=keys", "https://feeds.example/rss?category=keys"),
    ],
)
def test_feed_urls_are_stored_without_credentials(tmp_path, url, stored):
    store = Store.open(tmp_path / "w.db")
    store.sync_feeds([FeedConfig("private", url)], timedelta(minutes=15), NOW)
    assert store.feed_status()[0]["url"] == stored
    # The whole file: the secret is nowhere in it, not even in free pages.
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("w.db*"))
    for secret in (b"pa55", b"abc123", b"=k&", b"=t&"):
        if secret.strip(b"=&") in url.encode():
            assert secret not in raw


def test_migration_6_rebuilds_the_search_index_with_forms_over_the_articles_already_stored(tmp_path, monkeypatch):
    import watcher.store.base as base

    before = next(i for i, script in enumerate(MIGRATIONS) if "page_outcome" in script)
    monkeypatch.setattr(base, "MIGRATIONS", MIGRATIONS[:before])
    old = Store.open(tmp_path / "old.db")
    old.db.execute(
        "INSERT INTO articles (url, title, body, body_source, fetched_at, matched)"
        " VALUES ('https://n.example/1', 'Drones over Kursk', 'Attack drones were seen.', 'page', '2026-12-01T00:00:00Z', 1)"
    )
    old.db.conn.commit()
    assert [r[0] for r in old.db.execute("SELECT rowid FROM articles_fts WHERE articles_fts MATCH 'drone'")] == []
    old.close()
    monkeypatch.setattr(base, "MIGRATIONS", MIGRATIONS)
    new = Store.open(tmp_path / "old.db")
    assert new.schema_version() == len(MIGRATIONS)
    assert [r["title"] for r in new.search("drone")] == ["Drones over Kursk"]  # a form of the stored word
    assert new.db["articles"].detect_fts() == "articles_fts"
    new.close()
