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
