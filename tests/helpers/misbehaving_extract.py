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


def matching_runs_away_on_marked_titles(rules, title: str, body: str):
    """A matcher stuck on one article (as a rule or text we did not foresee could make it): RUNAWAY in the title."""
    from watcher.rules import match_with

    if "RUNAWAY" in title:
        time.sleep(3600)
    return match_with(rules, title, body)
