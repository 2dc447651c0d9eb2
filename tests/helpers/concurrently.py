"""Several calls at the same moment, each in a thread of its own: races the database must settle."""

from __future__ import annotations

import threading
from collections.abc import Callable


def at_once(*calls: Callable[[], object]) -> list[BaseException]:
    """Run the calls in threads released together by a barrier; return what they raised (nothing, for a pass)."""
    start, errors = threading.Barrier(len(calls), timeout=60), []

    def run(call: Callable[[], object]) -> None:
        start.wait()
        try:
            call()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
