"""PostgreSQL's schema is SQLite's: the same tables, columns and views, from its own numbered migrations."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers.concurrently import at_once
from watcher.config import is_database_url
from watcher.errors import StoreError
from watcher.store import Store
from watcher.store.migrations import MIGRATIONS
from watcher.store.migrations_pg import PG_MIGRATIONS
from watcher.store.postgres import connect, migrate, schema_version

# PostgreSQL's own: the schema version (SQLite keeps it in PRAGMA user_version) and the full-text column (SQLite
# keeps it in the articles_fts table).
PG_ONLY = {("watcher_schema", "version"), ("articles", "search_vector")}


def _sqlite_columns(store) -> dict[str, list[str]]:
    names = [
        r["name"]
        for r in store.db.query("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        if not r["name"].startswith(("articles_fts", "sqlite_"))
    ]
    return {n: [r["name"] for r in store.db.query(f"PRAGMA table_info([{n}])")] for n in names}


def _pg_columns(conn) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "ORDER BY table_name, ordinal_position"
    ).fetchall()
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        if (table, column) not in PG_ONLY:
            columns.setdefault(table, []).append(column)
    return {t: c for t, c in columns.items() if c}


def test_one_postgresql_migration_for_each_sqlite_one():
    assert len(PG_MIGRATIONS) == len(MIGRATIONS)


def test_postgresql_has_sqlite_tables_views_and_columns(tmp_path, postgres_url):
    sqlite_store = Store.open(tmp_path / "w.db")
    try:
        expected = _sqlite_columns(sqlite_store)
    finally:
        sqlite_store.close()
    with connect(postgres_url) as conn:
        assert migrate(conn) == len(PG_MIGRATIONS)
        assert _pg_columns(conn) == expected


def test_migrate_twice_and_from_two_workers_at_once(postgres_url):
    def worker():
        with connect(postgres_url) as conn:
            migrate(conn)

    assert at_once(worker, worker, worker) == []
    with connect(postgres_url) as conn:
        assert migrate(conn) == len(PG_MIGRATIONS)
        assert schema_version(conn) == len(PG_MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM watcher_schema").fetchone()[0] == 1


def test_search_finds_a_words_forms_through_the_gin_index(postgres_url):
    with connect(postgres_url) as conn:
        migrate(conn)
        conn.execute(
            "INSERT INTO articles (url, title, body, body_source, fetched_at) VALUES "
            "('https://n.example/1', 'Drone factories expand', 'Two plants opened.', 'page', '2026-12-01T00:00:00Z'),"
            "('https://n.example/2', 'Harvest report', 'Wheat and barley.', 'page', '2026-12-01T00:00:00Z')"
        )
        rows = conn.execute(
            "SELECT url FROM articles WHERE search_vector @@ websearch_to_tsquery('english', 'drone factory')"
        ).fetchall()
        assert rows == [("https://n.example/1",)]
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT url FROM articles WHERE search_vector @@ websearch_to_tsquery('english', 'drone')"
            )
        )
        assert "articles_search" in plan


def test_documented_views_answer_on_postgresql(postgres_url):
    with connect(postgres_url) as conn:
        migrate(conn)
        for view in (
            "latest_matches",
            "feed_health",
            "delivery_log",
            "topic_daily",
            "matched_articles",
            "stories_by_topic",
        ):
            conn.execute(f"SELECT * FROM {view}").fetchall()


def test_a_password_in_the_url_is_refused_and_password_env_is_used(postgres_url, monkeypatch):
    assert is_database_url(postgres_url) and not is_database_url("/var/lib/watcher/watcher.db")
    with pytest.raises(StoreError, match="password"):
        connect(postgres_url.replace("watcher@", "watcher:secret@"))
    with pytest.raises(StoreError, match="WATCHER_TEST_PW"):
        connect(postgres_url, password_env="WATCHER_TEST_PW")
    monkeypatch.setenv("WATCHER_TEST_PW", "anything")  # trust authentication ignores it; the connection must work
    with connect(postgres_url, password_env="WATCHER_TEST_PW") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_an_unreachable_server_is_a_store_error(postgres_cluster):
    url = postgres_cluster.url().replace(f":{postgres_cluster.port}/", ":1/")
    with pytest.raises(StoreError, match="cannot open database"):
        connect(url)


def test_the_schema_doc_names_what_only_postgresql_has():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "schema.md").read_text(encoding="utf-8")
    for table, column in PG_ONLY:
        assert f"`{table}`" in doc or f"`{table}.{column}`" in doc
        assert f"`{column}`" in doc or f".{column}`" in doc


def test_statements_written_for_sqlite_get_psycopg_placeholders_outside_literals():
    from watcher.store.postgres import translate

    assert translate("SELECT * FROM t WHERE a = ? AND b IN (?, ?)") == "SELECT * FROM t WHERE a = %s AND b IN (%s, %s)"
    assert translate("UPDATE t SET x = :now WHERE id = :id") == "UPDATE t SET x = %(now)s WHERE id = %(id)s"
    # A cast, a literal with a question mark, a colon or a percent sign are left as they mean.
    assert translate("SELECT x::text, '? :no 5%' FROM t WHERE y LIKE ?") == (
        "SELECT x::text, '? :no 5%%' FROM t WHERE y LIKE %s"
    )
    assert translate("SELECT 'it''s ?' , ?") == "SELECT 'it''s ?' , %s"


def test_config_takes_a_postgresql_url_without_its_password_and_names_the_password_variable(tmp_path):
    from watcher.config import config_from_dict
    from watcher.errors import ConfigError

    config = config_from_dict(
        {"watcher": {"database": "postgresql://watcher@db.internal/watcher", "password_env": "WATCHER_DB_PASSWORD"}}
    )
    assert (config.database, config.password_env) == ("postgresql://watcher@db.internal/watcher", "WATCHER_DB_PASSWORD")
    with pytest.raises(ConfigError) as failed:
        config_from_dict({"watcher": {"database": "postgresql://watcher:hunter2@db/watcher", "password_env": "1x"}})
    text = str(failed.value)
    assert "watcher.database" in text and "without a password" in text and "hunter2" not in text
    assert "watcher.password_env" in text


def test_the_cli_searches_and_reports_status_on_postgresql(tmp_path, postgres_cluster):
    from click.testing import CliRunner

    from watcher.cli import main
    from watcher.config import FeedConfig
    from watcher.models import Article, Entry, FeedUpdate, Match
    from watcher.store import open_store

    url = postgres_cluster.migrated_database()
    store = open_store(url)
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    store.sync_feeds([FeedConfig("wire", "https://wire.example/rss")], timedelta(minutes=15), now)
    feed_id = store.due_feeds(now + timedelta(days=1))[0].id
    entry = Entry("https://wire.example/rss", "e1", "https://news.example/1", None, "Drone plant opens")
    article = Article(
        "https://news.example/1",
        "Drone plant opens",
        "North Korean engineers at the drone plant.",
        "page",
        entry,
        matches=(Match("drones", 2.0, ("drone",), "[[drone]] plant"),),
    )
    update = FeedUpdate(
        "https://wire.example/rss", now, now + timedelta(minutes=15), "ok", seen_entry_ids=("e1",), articles=(article,)
    )
    store.apply_update(feed_id, update, {"drones": ("team",)})
    store.close()
    config = tmp_path / "watcher.toml"
    config.write_text(f'[watcher]\ndatabase = "{url}"\n', encoding="utf-8")
    found = CliRunner().invoke(main, ["--config", str(config), "search", "drones"], catch_exceptions=False)
    assert found.exit_code == 0, found.output
    assert "Drone plant opens" in found.output and "wire" in found.output
    status = CliRunner().invoke(main, ["--config", str(config), "status"], catch_exceptions=False)
    assert status.exit_code == 0, status.output
    assert "1 matched articles" in status.output


def test_health_on_postgresql_probes_a_write_and_a_stopped_server_is_reported_not_raised(postgres_cluster):
    from watcher.ops import assess_health
    from watcher.store import open_store

    url = postgres_cluster.migrated_database()
    store = open_store(url)
    try:
        assert store.probe_write() is None
        assert store.health().journal_mode == "postgresql"
        assert store.quick_check() is None
        health = assess_health(store, None, datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
        assert not any("database" in reason for reason in health.reasons), health
        # A database that is gone (dropped, or a server that refuses) is a reason, not a traceback.
        gone = store.open_another()
        gone.url = url.rsplit("/", 1)[0] + "/no_such_database"
        assert "no_such_database" in (gone.probe_write() or "")
        gone.close()
    finally:
        store.close()


def test_two_workers_writing_the_same_articles_at_once_both_succeed_and_store_each_once(postgres_cluster):
    """Two feeds carrying the same articles in opposite order, written by two workers at the same instant: the row
    locks can deadlock; the server rolls one back and its update is run again, so both land and nothing doubles."""
    from watcher.config import FeedConfig
    from watcher.models import Article, Entry, FeedUpdate, Match
    from watcher.store import open_store

    url = postgres_cluster.migrated_database()
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    stores = [open_store(url), open_store(url)]
    feeds = [FeedConfig("one", "https://one.example/rss"), FeedConfig("two", "https://two.example/rss")]
    stores[0].sync_feeds(feeds, timedelta(minutes=15), now)
    ids = {f.name: f.id for f in stores[0].due_feeds(now + timedelta(days=1))}
    rounds = 25

    def articles(feed: FeedConfig, urls: list[str]) -> tuple[Article, ...]:
        out = []
        for u in urls:
            entry = Entry(feed.url, u, u, None, f"Drone plant {u[-3:]}")
            body = f"North Korean engineers at drone plant {u[-3:]} near the border, officials said."
            out.append(
                Article(
                    u, f"Drone plant {u[-3:]}", body, "page", entry, matches=(Match("t", 1.0, ("drone",), "drone"),)
                )
            )
        return tuple(out)

    def write(index: int, barrier: threading.Barrier, failures: list[BaseException]) -> None:
        feed = feeds[index]
        for r in range(rounds):
            urls = [f"https://news.example/{r}-{k:03d}" for k in range(6)]
            batch = articles(feed, urls if index == 0 else urls[::-1])
            update = FeedUpdate(
                feed.url,
                now,
                now + timedelta(minutes=15),
                "ok",
                seen_entry_ids=tuple(a.entry.entry_id for a in batch),
                articles=batch,
            )
            barrier.wait()
            try:
                stores[index].apply_update(ids[feed.name], update, {"t": ("team",)})
            except BaseException as e:
                failures.append(e)

    barrier, failures = threading.Barrier(2), []
    threads = [threading.Thread(target=write, args=(i, barrier, failures)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert failures == []
        one = lambda sql: stores[0].db.execute(sql).fetchone()[0]
        assert one("SELECT count(*) FROM articles") == rounds * 6
        assert one("SELECT count(*) FROM article_sources") == rounds * 6 * 2
        assert one("SELECT count(*) FROM deliveries") == rounds * 6  # one alert per article, whichever feed won
        assert one("SELECT count(DISTINCT story_id) FROM articles") >= 1
    finally:
        for s in stores:
            s.close()


def test_an_update_the_server_rolled_back_for_a_deadlock_is_run_again(postgres_cluster, monkeypatch):
    from watcher.errors import StoreConflict
    from watcher.store import open_store
    from watcher.store.feeds import FeedQueries

    calls = []
    real = FeedQueries.apply_update

    def deadlocked_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise StoreConflict("database write failed: deadlock detected")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FeedQueries, "apply_update", deadlocked_once)
    store = open_store(postgres_cluster.migrated_database())
    try:
        from watcher.config import FeedConfig
        from watcher.models import FeedUpdate

        now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
        store.sync_feeds([FeedConfig("one", "https://one.example/rss")], timedelta(minutes=15), now)
        [feed] = store.due_feeds(now + timedelta(days=1))
        update = FeedUpdate(feed.url, now, now + timedelta(minutes=15), "ok", seen_entry_ids=("e1",))
        assert store.apply_update(feed.id, update, {}) == 0
        assert len(calls) == 2 and store.seen_entry_ids(feed.id, ["e1"]) == {"e1"}
    finally:
        store.close()
