"""Applying changed rules to the articles already stored (`watcher rematch`): the loop, batch by batch; and
what a changed rule would add and drop before it is saved (`preview_rule`, for the analyst's page).

Matching is pure (rules/); the store writes each batch's verdicts in one transaction (store.apply_rematch:
new matches added and alerted, lost ones retracted, never deleted). The command line only shows progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .learn import TopicModel, judge_article
from .rules import ArticleText, CompiledTopic, match_article, topic_holds
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


# --- what a changed rule would do, before it is saved (the analyst's page, "try a rule") ----------------------


@dataclass(frozen=True, slots=True)
class PreviewItem:
    article_id: int
    title: str
    url: str
    snippet: str  # from the rule that matches it ([[ ]]-marked terms)


@dataclass(frozen=True, slots=True)
class RulePreview:
    """How `candidate` compares with the current rule over the articles fetched since `since`."""

    checked: int
    kept: int  # matched by both
    added: tuple[PreviewItem, ...]  # matched by the candidate only
    dropped: tuple[PreviewItem, ...]  # matched by the current rule only
    added_count: int
    dropped_count: int


def preview_rule(
    store: Store,
    current: CompiledTopic | None,
    candidate: CompiledTopic,
    since: datetime,
    *,
    show: int = 50,
) -> RulePreview:
    """Match the stored articles since `since` with both rules (pure matching, nothing written): what the candidate
    would add and drop. Both rules are run now, so a difference is the rule's, not the store's history. Each
    article is cut into words once for both rules, and snippets are made only for the items shown."""
    checked = kept = added_count = dropped_count = 0
    added: list[PreviewItem] = []
    dropped: list[PreviewItem] = []

    def item(topic: CompiledTopic, row: dict) -> PreviewItem:
        found = match_article([topic], row["title"], row["body"])
        return PreviewItem(row["id"], row["title"], row["url"], found[0].snippet if found else "")

    for batch in store.articles_since(since):
        for row in batch:
            checked += 1
            art = ArticleText(row["title"], row["body"])
            new = topic_holds(candidate, art)
            old = current is not None and topic_holds(current, art)
            if new and old:
                kept += 1
            elif new:
                added_count += 1
                if len(added) < show:
                    added.append(item(candidate, row))
            elif old:
                dropped_count += 1
                if len(dropped) < show and current is not None:
                    dropped.append(item(current, row))
    return RulePreview(checked, kept, tuple(added), tuple(dropped), added_count, dropped_count)
