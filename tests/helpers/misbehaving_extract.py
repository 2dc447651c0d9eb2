"""Extraction functions that misbehave or tell on the pipeline, run in the Workers' processes by the tests."""

from __future__ import annotations

import dataclasses
import time

from watcher.extract import extract_text


def runs_away_on_marked_pages(content: bytes, url: str, metadata: bool = True):
    """Like trafilatura stuck on a pathological page: never returns for pages that contain RUNAWAY."""
    if b"RUNAWAY" in content:
        time.sleep(3600)
    return extract_text(content, url, metadata)


def crashes_the_worker(content: bytes, url: str, metadata: bool = True):
    import os

    os._exit(1)


def matching_runs_away_on_marked_titles(rules, title: str, body: str):
    """A matcher stuck on one article (as a rule or text we did not foresee could make it): RUNAWAY in the title."""
    from watcher.rules import match_with

    if "RUNAWAY" in title:
        time.sleep(3600)
    return match_with(rules, title, body)


def says_whether_metadata_was_asked(content: bytes, url: str, metadata: bool = True):
    """The real extraction, with a last line saying whether the pipeline asked for the page's title/author/date."""
    found = extract_text(content, url, metadata)
    mark = "METADATA-ASKED" if metadata else "METADATA-SPARED"
    return dataclasses.replace(found, text=f"{found.text}\n{mark}") if found else None
