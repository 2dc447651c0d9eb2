"""Operations: the health verdict, and the small HTTP endpoint that serves it and the metrics (metrics.py).

One verdict for every asker: `/healthz`, `watcher status --check` and the Docker HEALTHCHECK (which runs
`watcher status --check`) all end in `health_verdict(facts)`. The facts come from the database, which any
process can read, plus what only the daemon knows (its scheduler's last tick, a config file it refused):

  failing   the database cannot be written (the probe fails, or the daemon's writes failed STORE_FAILURES_FAILING
            times in a row: a damaged table lets the probe through); the scheduler stopped (no tick, or feeds long overdue: is the
            daemon running?); every feed fails and the network is not simply down
  degraded  the network is down (the pipeline's network.py recorded feeds as "offline" after the last success;
            their DNS and connect failures are not the feeds' fault); more than half the feeds fail; alerts are
            late or dead; the config file on disk has errors (the old one is in use)
  ok        otherwise; reasons may still list a few failing feeds

The endpoints are served by the daemon's one listener (web/server.py, uvicorn on the daemon's loop, beside the
analyst's page); the daemon gathers the facts in a thread, on the store's reader connection and the probe's own,
so a write waiting for a lock never delays the verdict. The daemon's run of failed writes is also kept in a
small file beside the database (`<db>.failing`), so that `watcher status --check`, another process, sees it too.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .config import Config
from .models import NETWORK_FAILURES, FailureKind
from .store import DATABASE_ERRORS, Store, from_db_time, recovery_advice

log = logging.getLogger("watcher.ops")

# The last errors that say "no network" rather than "broken feed": an outage's own, and network.py's "offline".
UNREACHABLE_KINDS: frozenset[FailureKind] = NETWORK_FAILURES | {"offline"}
LATE_ALERTS_AFTER = timedelta(minutes=30)  # an alert due this long and not sent is late (immediate ones go in ~1 min)
OVERDUE_AFTER = timedelta(minutes=10)  # a feed due this long ago and not polled means no scheduler is running
TICKS_MISSED = 3  # the daemon's own scheduler is stalled after this many ticks without one (at least a minute)
STORE_FAILURES_FAILING = 3  # the daemon's writes failing this many times in a row is a failing database


# --- the verdict (pure) ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthFacts:
    feeds_enabled: int = 0
    feeds_failing: int = 0  # failing for reasons of their own (an offline spell's network errors not included)
    offline: bool = False  # the newest poll found the network down (no success since)
    feeds_unreachable: int = 0  # while offline: feeds whose last poll could not reach them
    feeds_overdue: int = 0  # enabled feeds whose next check passed more than `overdue_limit_s` ago
    most_overdue_s: float = 0.0
    overdue_limit_s: float = OVERDUE_AFTER.total_seconds()
    last_poll_age_s: float | None = None  # since the newest poll of any feed finished; None: never
    late_alerts: int = 0
    dead_alerts: int = 0
    database_error: str | None = None
    tick_age_s: float | None = None  # seconds since the scheduler's last tick; only the daemon knows it
    tick_limit_s: float = 90.0
    config_error: str | None = None  # the config file on disk does not load (the daemon keeps its old one)
    store_failures: int = 0  # the daemon's writes that failed in a row (damaged, read-only, full, locked)
    store_error: str | None = None  # the last of them


@dataclass(frozen=True, slots=True)
class Health:
    status: str  # ok | degraded | failing
    reasons: tuple[str, ...] = ()

    @property
    def http_status(self) -> int:
        return 503 if self.status == "failing" else 200

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": list(self.reasons)}

    def line(self) -> str:
        return self.status + (": " + "; ".join(self.reasons) if self.reasons else "")


def health_verdict(f: HealthFacts) -> Health:
    failing: list[str] = []
    degraded: list[str] = []
    notes: list[str] = []
    if f.database_error:
        failing.append(f"database not writable: {f.database_error}")
    if f.store_failures >= STORE_FAILURES_FAILING:
        failing.append(f"database writes failing: {f.store_failures} in a row, the last: {f.store_error}")
    if f.tick_age_s is not None and f.tick_age_s > f.tick_limit_s:
        failing.append(f"scheduler stalled: last tick {f.tick_age_s:.0f} s ago")
    # Overdue feeds alone could be long polls still running (hundreds of slow pages); overdue feeds and no poll
    # finishing anywhere for as long mean nothing is polling.
    if f.feeds_overdue and (f.last_poll_age_s is None or f.last_poll_age_s > f.overdue_limit_s):
        failing.append(
            f"scheduler not polling: {f.feeds_overdue} feed(s) overdue by up to {_span(f.most_overdue_s)} (is the daemon running?)"
        )
    if f.offline:
        degraded.append(f"offline: {f.feeds_unreachable} of {f.feeds_enabled} feeds unreachable (is the network down?)")
    if f.feeds_failing:
        share = f"{f.feeds_failing} of {f.feeds_enabled} feeds failing"
        if f.feeds_failing == f.feeds_enabled:
            failing.append(share)
        elif f.feeds_failing * 2 > f.feeds_enabled:
            degraded.append(share)
        else:
            notes.append(share)
    if f.late_alerts:
        degraded.append(
            f"{f.late_alerts} alert(s) late: due over {_span(LATE_ALERTS_AFTER.total_seconds())} ago and not sent"
        )
    if f.dead_alerts:
        degraded.append(f"{f.dead_alerts} alert(s) failed for good (`watcher alerts list --failed`)")
    if f.config_error:
        degraded.append(f"config file not loaded, the previous one is in use: {f.config_error}")
    status = "failing" if failing else "degraded" if degraded else "ok"
    return Health(status, tuple(failing + degraded + notes))


def _span(seconds: float) -> str:
    return (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.0f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )


# --- the facts (read from the store) --------------------------------------------------------------------------


def gather_facts(
    store: Store,
    config: Config | None,
    now: datetime,
    *,
    database_error: str | None = None,
    tick_age_s: float | None = None,
    config_error: str | None = None,
    store_failures: int = 0,
    store_error: str | None = None,
) -> HealthFacts:
    """What the verdict needs, from the database (and config, for tick and channel modes; None: defaults)."""
    tick = (config.schedule.tick if config else timedelta(seconds=30)).total_seconds()
    overdue_limit = max(OVERDUE_AFTER.total_seconds(), 5 * tick)
    enabled = [f for f in store.feed_facts() if f["enabled"]]
    # Offline when a poll recorded "offline" after the newest success anywhere (network.py: the first success
    # ends an offline spell); then the feeds' own network failures are the network's, not theirs.
    newest = lambda rows: max((r["last_checked_at"] or "" for r in rows), default="")
    newest_offline = newest([f for f in enabled if f["last_status"] == "offline"])
    offline = bool(newest_offline) and newest_offline >= newest(
        [f for f in enabled if f["last_status"] in ("ok", "not-modified")]
    )
    unreachable = {
        f["name"]
        for f in enabled
        if f["last_status"] == "offline" or (f["error_count"] and f["last_error_kind"] in UNREACHABLE_KINDS)
    }
    failing = [f for f in enabled if f["error_count"] > 0 and not (offline and f["name"] in unreachable)]
    overdue = [
        (now - due).total_seconds()
        for f in enabled
        if (due := from_db_time(f["next_check_at"])) is not None and (now - due).total_seconds() > overdue_limit
    ]
    last_poll = from_db_time(newest(enabled) or None)
    counts = store.counts()
    return HealthFacts(
        feeds_enabled=len(enabled),
        feeds_failing=len(failing),
        offline=offline,
        feeds_unreachable=len(unreachable) if offline else 0,
        feeds_overdue=len(overdue),
        most_overdue_s=max(overdue, default=0.0),
        overdue_limit_s=overdue_limit,
        last_poll_age_s=(now - last_poll).total_seconds() if last_poll else None,
        late_alerts=_late_alerts(store.pending_summary(), config, now),
        dead_alerts=counts["dead"],
        database_error=database_error,
        tick_age_s=tick_age_s,
        tick_limit_s=max(TICKS_MISSED * tick, 60.0),
        config_error=config_error,
        store_failures=store_failures,
        store_error=store_error,
    )


def _late_alerts(pending: Sequence[Mapping[str, Any]], config: Config | None, now: datetime) -> int:
    """Pending alerts that should have gone by now. Digest items wait for their slot on purpose, so only
    immediate ones (immediate channels, urgent topics) count from their creation, and others once tried."""
    cutoff = now - LATE_ALERTS_AFTER
    channels = {c.name: c for c in config.channels} if config else {}
    urgent = {t.name for t in config.topics if t.urgent} if config else set()
    late = 0
    for row in pending:
        ch = channels.get(row["channel"])
        immediate = ch is not None and (ch.mode == "immediate" or (ch.urgent_immediately and row["topic"] in urgent))
        since = from_db_time(row["oldest"] if immediate else row["oldest_tried"])
        if since is not None and since < cutoff:
            late += row["n"]
    return late


def assess_health(store: Store, config: Config | None, now: datetime, **facts: Any) -> Health:
    """The verdict for `watcher status --check` (the daemon passes its tick age and write failures; another
    process reads the failures from the marker file). A database that cannot even be read is failing, not a
    traceback."""
    facts.setdefault("database_error", store.probe_write())
    if "store_failures" not in facts:
        facts["store_failures"], facts["store_error"] = read_failure_marker(store.path)
    try:
        return health_verdict(gather_facts(store, config, now, **facts))
    except DATABASE_ERRORS as e:
        return Health("failing", (f"database unreadable: {e}; {recovery_advice(store.path)}",))


# --- the daemon's run of failed writes, for other processes -----------------------------------------------------


def failure_marker(db_path: str) -> str:
    return db_path + ".failing"


def write_failure_marker(db_path: str, count: int, error: str) -> None:
    if db_path == ":memory:":
        return
    try:
        with open(failure_marker(db_path), "w", encoding="utf-8") as f:
            json.dump({"count": count, "error": error}, f)
    except OSError as e:  # a read-only directory: /healthz still says it; the log says why the marker is missing
        log.warning("cannot write %s: %s", failure_marker(db_path), e)


def clear_failure_marker(db_path: str) -> None:
    try:
        os.unlink(failure_marker(db_path))
    except OSError:
        pass


def read_failure_marker(db_path: str) -> tuple[int, str | None]:
    try:
        with open(failure_marker(db_path), encoding="utf-8") as f:
            data = json.load(f)
        return int(data["count"]), str(data["error"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, None


# --- the HTTP answers ------------------------------------------------------------------------------------------

_ADDRESS = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p6>\d{1,5})|(?P<host>[A-Za-z0-9.-]+):(?P<port>\d{1,5})")


def parse_address(text: str) -> tuple[str, int]:
    """'127.0.0.1:9108', 'localhost:9108', '[::1]:9108' -> (host, port). Raises ValueError."""
    m = _ADDRESS.fullmatch(text.strip())
    port = int(m.group("p6") or m.group("port")) if m else -1
    if not m or not 0 <= port <= 65535:
        raise ValueError(f'expected an address such as "127.0.0.1:9108" or "[::1]:9108", found {text!r}')
    return (m.group("v6") or m.group("host")), port


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes


Handler = Callable[[], Awaitable[Response]]  # what the listener (web/) calls for /healthz and /metrics


def health_response(health: Health) -> Response:
    return Response(
        health.http_status, "application/json", json.dumps(health.as_dict(), ensure_ascii=False).encode() + b"\n"
    )
