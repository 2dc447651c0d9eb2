"""Applying changed rules to the articles already stored (`watcher rematch`): the loop, batch by batch.

Matching is pure (rules/); the store writes each batch's verdicts in one transaction (store.apply_rematch:
new matches added and alerted, lost ones retracted, never deleted). The command line only shows progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .rules import CompiledTopic, match_article
from .store import Store


@dataclass(frozen=True, slots=True)
class RematchResult:
    checked: int
    added: int
    retracted: int
    queued: int


def rematch(
    store: Store,
    topics: Sequence[CompiledTopic],
    routes: Mapping[str, Sequence[str]],
    now: datetime,
    on_batch: Callable[[int], None] | None = None,
) -> RematchResult:
    """Match every stored article against `topics` again and record what changed; `on_batch(n)` after each batch."""
    names = [t.name for t in topics]
    checked = added = retracted = queued = 0
    for batch in store.articles_to_rematch():
        results = [(row["id"], match_article(topics, row["title"], row["body"])) for row in batch]
        a, r, q = store.apply_rematch(results, names, routes, now)
        checked, added, retracted, queued = checked + len(batch), added + a, retracted + r, queued + q
        if on_batch:
            on_batch(len(batch))
    return RematchResult(checked, added, retracted, queued)
