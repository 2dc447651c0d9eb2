"""What killed the previous run: a fatal signal leaves no log line, so its report is kept beside the database.

SQLite maps the WAL's `-shm` file into memory; when that file stops being writable under it (an immutable flag, a
full or remounted /dev/shm), the next access is a SIGBUS and the process dies at once, with nothing in the log
(seen in the hostile run). faulthandler writes the Python traceback of such a death (SIGSEGV, SIGBUS, SIGFPE,
SIGABRT, SIGILL) to `<db>.crash.<pid>`; a clean stop removes the file, and the next start logs what it holds.
One file per process, since several workers on one machine may share the database (docs/schema.md).
"""

from __future__ import annotations

import faulthandler
import glob
import logging
import os
from typing import TextIO

from .processes import other_process_running

log = logging.getLogger("watcher.daemon")

_armed: TextIO | None = None


def crash_file(db_path: str) -> str:
    """Where the report of a fatal signal is kept for a look (the `.old` of this name)."""
    return db_path + ".crash"


def _own_file(db_path: str) -> str:
    # One file per process: several workers on one machine share the database's side files, and one worker must
    # neither take over nor remove another's armed file.
    return f"{crash_file(db_path)}.{os.getpid()}"


def previous_crash(db_path: str) -> str | None:
    """The first line of the report a fatal signal left (`Fatal Python error: Bus error`), or None. The report of
    a process that has ended is kept as `<db>.crash.old` for a closer look, so it is told once; the armed files of
    processes still running (other workers on this machine) are left alone."""
    found = None
    base = crash_file(db_path)
    for path in sorted(glob.glob(glob.escape(base) + ".*")) + [base]:  # [base]: a report of an earlier version
        suffix = path[len(base) + 1 :]
        if path != base and (not suffix.isdigit() or other_process_running(int(suffix))):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read().strip()
        except OSError:
            continue
        try:
            if text:
                os.replace(path, base + ".old")
            else:  # armed, and ended without a fatal signal (SIGKILL): nothing to tell
                os.unlink(path)
        except OSError:
            pass
        if text and found is None:
            found = text.splitlines()[0]
    return found


def arm(db_path: str) -> None:
    """From here until disarm(), a fatal signal writes its traceback to `<db>.crash.<pid>`."""
    global _armed
    if db_path == ":memory:" or _armed is not None:
        return
    try:
        _armed = open(_own_file(db_path), "w", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
    except OSError as e:
        log.warning("cannot write %s (a fatal signal would leave no report): %s", _own_file(db_path), e)
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
        os.unlink(_own_file(db_path))
    except OSError:
        pass
