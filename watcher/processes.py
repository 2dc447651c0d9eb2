"""Whether a process of this machine is still running: for files and claims that name the pid that wrote them."""

from __future__ import annotations

import os


def other_process_running(pid: int) -> bool:
    """True while process `pid` runs. Our own pid counts as gone: a file or claim naming it was left by an earlier
    process whose pid we reuse (a restarted container starts at the same pid), or by one we replaced."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: running
    return True
