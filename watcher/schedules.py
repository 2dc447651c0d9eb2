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

import re

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
        try:  # let APScheduler judge the fields; it is the one that will run them
            from apscheduler.triggers.cron import CronTrigger

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
