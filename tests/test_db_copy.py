"""`watcher db copy`: a SQLite installation into a real PostgreSQL, ids kept; idempotent and resumable."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.test_ops import NOW, sample_store
from watcher.cli import main
from watcher.errors import StoreError
from watcher.store.copy import TABLES, copy_to_postgres, rows_to_copy
from watcher.store.postgres import connect


@pytest.fixture
def sqlite_file(tmp_path):
    store = sample_store(tmp_path / "w.db")
    store.record_worker_tick("w1", "host-a", 1, NOW, feeds_polled=3)
    store.close()
    return tmp_path / "w.db"


def _counts(url: str) -> dict[str, int]:
    with connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def test_copy_keeps_every_row_and_id_and_a_second_run_adds_nothing(sqlite_file, postgres_url):
    expected = rows_to_copy(sqlite_file)
    assert expected["articles"] == 2 and expected["deliveries"] >= 2 and expected["workers"] == 1
    result = CliRunner().invoke(main, ["db", "copy", str(sqlite_file), postgres_url])
    assert result.exit_code == 0, result.output
    assert f"{sum(expected.values())} rows copied, 0 already there" in result.output
    assert _counts(postgres_url) == expected
    again = CliRunner().invoke(main, ["db", "copy", str(sqlite_file), postgres_url])
    assert again.exit_code == 0 and f"0 rows copied, {sum(expected.values())} already there" in again.output
    assert _counts(postgres_url) == expected
    with connect(postgres_url) as conn:
        urls = conn.execute("SELECT id, url FROM articles ORDER BY id").fetchall()
        assert [u for _, u in urls] == ["https://news.example/1", "https://news.example/2"]
        assert conn.execute("SELECT status FROM deliveries WHERE id = 1").fetchone() == ("sent",)
        found = conn.execute(
            "SELECT count(*) FROM articles WHERE search_vector @@ websearch_to_tsquery('english', 'drone')"
        ).fetchone()[0]
        assert found >= 1
        # A row PostgreSQL numbers itself comes after the copied ones.
        new_id = conn.execute(
            "INSERT INTO feeds (name, url, interval_s, added_at, next_check_at) VALUES ('new', 'https://new.example/', 60, 'x', 'x') RETURNING id"
        ).fetchone()[0]
        assert new_id > max(i for (i,) in conn.execute("SELECT id FROM feeds WHERE name <> 'new'"))


def test_an_interrupted_copy_is_resumed_by_running_it_again(sqlite_file, postgres_url, monkeypatch):
    expected = rows_to_copy(sqlite_file)

    def stop_after_articles(table: str, _n: int) -> None:
        if table == "articles":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_to_postgres(sqlite_file, postgres_url, progress=stop_after_articles)
    partial = _counts(postgres_url)
    assert partial["articles"] == expected["articles"] and partial["matches"] == 0
    added = copy_to_postgres(sqlite_file, postgres_url)
    assert added["articles"] == 0 and added["matches"] == expected["matches"]
    assert _counts(postgres_url) == expected


def test_nul_characters_that_postgresql_refuses_are_dropped(tmp_path, postgres_url):
    store = sample_store(tmp_path / "w.db")
    store.db.conn.execute("UPDATE articles SET title = ? WHERE id = 1", ("Drone\x00 factory",))
    store.close()
    copy_to_postgres(tmp_path / "w.db", postgres_url)
    with connect(postgres_url) as conn:
        assert conn.execute("SELECT title FROM articles WHERE id = 1").fetchone() == ("Drone factory",)


def test_a_file_of_another_schema_or_none_is_refused(tmp_path, postgres_url):
    with pytest.raises(StoreError, match="does not exist"):
        copy_to_postgres(tmp_path / "none.db", postgres_url)
    old = tmp_path / "old.db"
    import sqlite3

    sqlite3.connect(old).execute("PRAGMA user_version = 3")
    with pytest.raises(StoreError, match="schema 3"):
        copy_to_postgres(old, postgres_url)
