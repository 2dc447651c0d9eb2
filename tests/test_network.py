"""The offline detector's decisions, as a table of outcomes in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.models import FeedUpdate
from watcher.network import NetworkWatch

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def outcome(host: str, status: str = "error", kind: str | None = "connect") -> FeedUpdate:
    return FeedUpdate(
        f"https://{host}/feed",
        NOW,
        NOW + timedelta(hours=2),
        status,
        error="refused",
        error_kind=kind if status == "error" else None,
    )


@pytest.mark.parametrize(
    "sequence, expected",
    [
        # three hosts unreachable in a row: the third is offline
        ([("a", "error", "dns"), ("b", "error", "connect"), ("c", "error", "dns")], ["error", "error", "offline"]),
        # the same host failing again does not make the network look down
        ([("a", "error", "dns"), ("a", "error", "dns"), ("a", "error", "dns")], ["error", "error", "error"]),
        # a success anywhere in between resets the count
        (
            [("a", "error", "dns"), ("b", "error", "dns"), ("c", "ok", None), ("d", "error", "dns")],
            ["error", "error", "ok", "error"],
        ),
        # HTTP errors and timeouts are the feeds' own problems
        ([("a", "error", "http"), ("b", "error", "timeout"), ("c", "error", "parse")], ["error", "error", "error"]),
        # offline ends with the first success, and later failures count again
        (
            [
                ("a", "error", "dns"),
                ("b", "error", "dns"),
                ("c", "error", "dns"),
                ("d", "error", "dns"),
                ("e", "ok", None),
                ("f", "error", "dns"),
            ],
            ["error", "error", "offline", "offline", "ok", "error"],
        ),
    ],
)
def test_offline_is_recognised_from_the_pattern(sequence, expected):
    watch = NetworkWatch()
    assert [watch.classify(outcome(*step)).status for step in sequence] == expected


def test_offline_uses_the_plain_interval_instead_of_the_back_off():
    watch = NetworkWatch(hosts_before_offline=1)
    failed = outcome("a")
    plain = FeedUpdate(failed.feed_url, NOW, NOW + timedelta(minutes=15), "error")
    assert watch.classify(failed, plain).next_check_at == NOW + timedelta(minutes=15)


def test_the_failures_before_an_outage_was_recognised_are_handed_back_once():
    watch = NetworkWatch()
    assert watch.classify(outcome("a", kind="dns"), key=1).status == "error"
    assert watch.take_earlier_failures() == []  # not an outage (yet)
    assert watch.classify(outcome("b", kind="connect"), key=2).status == "error"
    third = watch.classify(outcome("c", kind="dns"), key=3)
    assert third.status == "offline" and third.error == "refused"  # its own words, no "offline: " repeated
    assert [key for key, _ in watch.take_earlier_failures()] == [1, 2]
    assert watch.take_earlier_failures() == []
    watch.classify(outcome("d", "ok", None))
    assert watch.classify(outcome("e", kind="dns"), key=5).status == "error"
    assert watch.take_earlier_failures() == []


async def test_one_outage_shows_as_offline_for_every_feed_in_the_store_and_the_log(store, caplog):
    """Five feeds on hosts that do not resolve (an injected resolver failure, as on an offline machine)."""
    import logging
    import socket

    from tests.helpers.news import poll_all
    from watcher import guard
    from watcher.config import config_from_dict

    async def offline_resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    config = config_from_dict(
        {
            "fetch": {"concurrency": 1, "timeout": "3s"},
            "feeds": [{"name": f"f{i}", "url": f"https://feeds{i}.example.test/rss"} for i in range(5)],
            "topics": {"t": {"rule": "drone*"}},
        },
        "offline.toml",
    )
    original = guard._system_resolve
    guard._system_resolve = offline_resolver
    try:
        with caplog.at_level(logging.INFO, logger="watcher"):
            outcomes = await poll_all(config, store, extractor=None)
    finally:
        guard._system_resolve = original
    assert {o.update.status for o in outcomes.values()} == {"offline"}
    rows = store.feed_status()
    assert {r["last_status"] for r in rows} == {"offline"}
    assert {r["error_count"] for r in rows} == {0}
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("feed f")]
    assert all("(offline)" not in line and "offline: " not in line for line in lines), lines
    assert any(line.startswith("feed f4: offline (the network is down): cannot resolve") for line in lines), lines
