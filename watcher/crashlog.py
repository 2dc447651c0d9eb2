"""What killed the previous run: a fatal signal leaves no log line, so its report is kept beside the database.

SQLite maps the WAL's `-shm` file into memory; when that file stops being writable under it (an immutable flag, a
full or remounted /dev/shm), the next access is a SIGBUS and the process dies at once, with nothing in the log
(seen in the hostile run). faulthandler writes the Python traceback of such a death (SIGSEGV, SIGBUS, SIGFPE,
SIGABRT, SIGILL) to `<db>.crash`; a clean stop removes the file, and the next start logs what it holds.
"""

from __future__ import annotations

import faulthandler
import logging
import os
from typing import TextIO

log = logging.getLogger("watcher.daemon")

_armed: TextIO | None = None


def crash_file(db_path: str) -> str:
    return db_path + ".crash"


def previous_crash(db_path: str) -> str | None:
    """The first line of the report a fatal signal left (`Fatal Python error: Bus error`), or None. The report is
    kept as `<db>.crash.old` for a closer look, so it is told once."""
    path = crash_file(db_path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().strip()
    except OSError:
        return None
    try:
        os.replace(path, path + ".old")
    except OSError:
        pass
    return text.splitlines()[0] if text else None


def arm(db_path: str) -> None:
    """From here until disarm(), a fatal signal writes its traceback to `<db>.crash`."""
    global _armed
    if db_path == ":memory:" or _armed is not None:
        return
    try:
        _armed = open(crash_file(db_path), "w", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
    except OSError as e:
        log.warning("cannot write %s (a fatal signal would leave no report): %s", crash_file(db_path), e)
        return
    faulthandler.enable(file=_armed, all_threads=True)


def disarm(db_path: str) -> None:
    """A clean stop: nothing to report next time."""
    global _armed
    if _armed is None:
        return
    faulthandler.disable()
    _armed.close()
    _armed = None
    try:
        os.unlink(crash_file(db_path))
    except OSError:
        pass
