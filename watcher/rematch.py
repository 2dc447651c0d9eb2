"""Applying changed rules to the articles already stored (`watcher rematch`): the loop, batch by batch.

Matching is pure (rules/); the store writes each batch's verdicts in one transaction (store.apply_rematch:
new matches added and alerted, lost ones retracted, never deleted). The command line only shows progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .learn import TopicModel, judge_article
from .rules import CompiledTopic
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
    models: Mapping[str, TopicModel] | None = None,
) -> RematchResult:
    """Match every stored article against `topics` again and record what changed; `on_batch(n)` after each batch.

    With `models` (topics that learn, learn/), a match the model holds back is not a match here either: it is
    recorded as held back, like a poll would, and a possible match is recorded without an alert."""
    names = [t.name for t in topics]
    checked = added = retracted = queued = 0
    for batch in store.articles_to_rematch():
        judged = [(row["id"], judge_article(topics, models or {}, row["title"], row["body"])) for row in batch]
        results = [(article_id, matches) for article_id, (matches, _) in judged]
        calls = [(article_id, calls) for article_id, (_, calls) in judged if calls]
        a, r, q = store.apply_rematch(results, names, routes, now)
        if calls:
            store.save_model_calls(calls, now)
        checked, added, retracted, queued = checked + len(batch), added + a, retracted + r, queued + q
        if on_batch:
            on_batch(len(batch))
    return RematchResult(checked, added, retracted, queued)
