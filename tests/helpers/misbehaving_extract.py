"""Extraction functions that misbehave, run in the Workers' processes by the tests."""

from __future__ import annotations

import time

from watcher.extract import extract_text


def runs_away_on_marked_pages(content: bytes, url: str):
    """Like trafilatura stuck on a pathological page: never returns for pages that contain RUNAWAY."""
    if b"RUNAWAY" in content:
        time.sleep(3600)
    return extract_text(content, url)


def crashes_the_worker(content: bytes, url: str):
    import os

    os._exit(1)
