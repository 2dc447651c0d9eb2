"""Digest schedules in words people write ("daily at 07:00") -> cron fields. Pure; the daemon builds triggers.

Accepted forms:
    hourly                         at minute 0 of every hour
    hourly at :30                  at minute 30
    daily at 07:00                 every day
    weekdays at 07:30              Monday to Friday
    weekly on monday at 07:00      one day a week
    0 7 * * 1-5                    a five-field cron line (minute hour day month day-of-week)
"""

from __future__ import annotations

import email.utils
import random
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

# What a schedule error says is expected: every form parse_schedule reads.
SCHEDULE_FORMS = (
    '"hourly", "hourly at :30", "daily at 07:00", "weekdays at 07:30", "weekly on monday at 07:00" '
    'or a five-field cron line such as "0 7 * * 1-5"'
)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = r"(\d{1,2}):(\d{2})"


def parse_schedule(text: str) -> dict[str, str]:
    """Return APScheduler CronTrigger keyword arguments for a schedule. Raises ValueError with the reason."""
    s = " ".join(text.strip().lower().split())
    if m := re.fullmatch(r"hourly(?: at :(\d{2}))?", s):
        return {"minute": str(_bounded(m.group(1) or "0", 59, "minute")), "hour": "*"}
    if m := re.fullmatch(rf"(daily|weekdays) at {_TIME}", s):
        fields = _at(m.group(2), m.group(3))
        if m.group(1) == "weekdays":
            fields["day_of_week"] = "mon-fri"
        return fields
    if m := re.fullmatch(rf"weekly on ([a-z]+) at {_TIME}", s):
        day = m.group(1)[:3]
        if day not in _DAYS:
            raise ValueError(f"unknown day {m.group(1)!r}")
        return {**_at(m.group(2), m.group(3)), "day_of_week": day}
    parts = s.split(" ")
    if len(parts) == 5 and all(re.fullmatch(r"[\d*/,\-a-z]+", p) for p in parts):
        fields = dict(zip(("minute", "hour", "day", "month", "day_of_week"), parts))
        try:  # let APScheduler judge the fields; it is the one that computes the slots
            CronTrigger(**fields, timezone="UTC")
        except ValueError as e:
            raise ValueError(str(e)) from e
        return fields
    raise ValueError("not a schedule watcher knows")


def _at(hour: str, minute: str) -> dict[str, str]:
    return {"hour": str(_bounded(hour, 23, "hour")), "minute": str(_bounded(minute, 59, "minute"))}


def _bounded(value: str, top: int, what: str) -> int:
    number = int(value)
    if number > top:
        raise ValueError(f"{what} {number} is out of range")
    return number


def latest_slot(schedule: str, timezone: str, now: datetime, after: datetime | None) -> datetime | None:
    """The most recent digest slot in (after, now], or None when no slot has come since `after`.

    A daemon that was down across several slots gets one slot back, the latest: the missed digests are sent
    once, not once per missed slot. `after` None (a channel that never sent) counts from a day before now, so a
    new install does not send a digest of the past at start-up unless a slot passed in the last day.
    """
    trigger = CronTrigger(**parse_schedule(schedule), timezone=ZoneInfo(timezone))
    start = after if after is not None else now - timedelta(days=1)
    slot = trigger.get_next_fire_time(None, start + timedelta(seconds=1))
    if slot is None or slot > now:
        return None
    # Walk forward to the last slot not after now; bounded, since a slot is at most hourly.
    for _ in range(24 * 400):
        following = trigger.get_next_fire_time(slot, slot + timedelta(seconds=1))
        if following is None or following > now:
            break
        slot = following
    return slot


def next_check_at(
    now: datetime,
    interval: timedelta,
    *,
    errors: int = 0,
    server_hint: timedelta | None = None,
    max_backoff: timedelta = timedelta(hours=6),
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> datetime:
    """When to poll a feed next.

    After a success (`errors` 0): the feed's interval, stretched to the server's hint (Retry-After, max-age)
    when that is longer, never more than a day. After the n-th failure in a row: the interval times 2**(n-1),
    capped at `max_backoff`, or the server's Retry-After when longer: a feed is never given up for good. Either
    way +-`jitter` of the delay, so feeds added together do not stay in lock-step.
    """
    uniform = (rng or random).uniform
    delay = interval
    if errors > 0:
        delay = min(interval * (2 ** min(errors - 1, 20)), max(max_backoff, interval))
    if server_hint is not None:
        delay = max(delay, min(server_hint, MAX_SERVER_HINT))
    spread = delay.total_seconds() * jitter
    return now + delay + timedelta(seconds=uniform(-spread, spread))


MAX_SERVER_HINT = timedelta(days=1)  # a server's Retry-After or max-age is obeyed up to a day, never beyond


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as a delay: delta-seconds or an HTTP-date (RFC 9110 10.2.3), clamped to [0, 1 day]."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(timedelta(seconds=min(int(text), 10**9)), MAX_SERVER_HINT)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 9110 dates are GMT; "-0000" parses as naive
    return min(max(when - now, timedelta(0)), MAX_SERVER_HINT)
