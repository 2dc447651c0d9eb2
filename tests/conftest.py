from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.localsite import LocalSite

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def site():
    """A real HTTP server on 127.0.0.1, empty until the test adds routes."""
    s = LocalSite().start()
    yield s
    s.stop()


@pytest.fixture
def fixture_bytes():
    def read(name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    return read


@pytest.fixture(scope="session")
def extractor():
    """One extraction pool for the whole run: starting worker processes is the slow part."""
    from watcher.workers import Workers

    e = Workers(workers=1, timeout_s=20)
    yield e
    e.shutdown()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store(request, tmp_path):
    """The store on each backend, opened as the daemon opens it: a real SQLite file, and a new database of the
    run's real PostgreSQL server (tests/helpers/postgres.py). A test that is about SQLite itself asks for
    `sqlite_store`."""
    from watcher.store import open_store

    if request.param == "sqlite":
        target = str(tmp_path / "watcher.db")
    else:
        target = request.getfixturevalue("postgres_cluster").migrated_database()
    s = open_store(target)
    yield s
    s.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def worker_database(request, tmp_path) -> str:
    """The `[watcher] database` value several workers of a test share: a SQLite file (several processes on one file
    in WAL mode is a legitimate configuration too) and a new database of the run's PostgreSQL server. Open it with
    `watcher.store.open_store`, once per worker."""
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return request.getfixturevalue("postgres_cluster").migrated_database()


@pytest.fixture
def sqlite_store(tmp_path):
    """A real SQLite file, opened as the daemon opens it."""
    from watcher.store import Store

    s = Store.open(tmp_path / "watcher.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL cluster for the whole run (tests/helpers/postgres.py), stopped at the end."""
    from tests.helpers.postgres import PostgresCluster, missing_reason

    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster):
    """The URL of a new, empty database of the session's cluster."""
    return postgres_cluster.create_database()


def pytest_collection_modifyitems(config, items):
    """Tests on the real PostgreSQL server are slow: the cluster starts once per run (~9 s) as a subprocess."""
    for item in items:
        if "postgres_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
