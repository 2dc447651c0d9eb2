"""Labels in the store -> models in the store, for the topics whose labels changed since their model was trained.

`watcher label` and `watcher labels import` call `retrain_changed` before they return, so the next poll uses the
new model; the daemon calls it in a worker thread after each poll pass (never on the event loop). A topic with no
labels, or without both yes and no labels, has no model and is matched by its rule alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from ..config import Config
from ..store import Store
from .model import TopicModel
from .train import Example, can_train, train

log = logging.getLogger("watcher.learn")


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    topic: str
    status: str  # "trained" | "removed" (too few labels: the rule alone decides)
    labels: int
    positives: int
    seconds: float
    features: int = 0


def models_in_use(config: Config, store: Store) -> dict[str, TopicModel]:
    """The stored models of the config's topics that learn, with each topic's thresholds."""
    topics = {t.name: t for t in config.topics if t.learn}
    out = {}
    for row in store.load_models():
        topic = topics.get(row["topic"])
        if topic is None:
            continue
        out[topic.name] = TopicModel(
            topic=topic.name,
            bias=row["bias"],
            weights=row["weights"],
            labels=row["labels"],
            positives=row["positives"],
            trained_at=row["trained_at"],
            labels_version=row["labels_version"],
            hold_below=topic.hold_below,
            possible_above=topic.possible_above,
        )
    return out


def stale_topics(config: Config, store: Store) -> list[str]:
    """Topics whose labels changed since their model was trained (two cheap queries: safe to ask often)."""
    labels, models = store.labels_versions(), store.model_versions()
    return [t.name for t in config.topics if t.learn and labels.get(t.name) != models.get(t.name)]


def retrain_changed(
    config: Config,
    store: Store,
    now: Callable[[], datetime],
    *,
    topics: Iterable[str] | None = None,
) -> list[TrainOutcome]:
    """Train (or remove) the model of every stale topic, or of `topics`; returns what was done."""
    compiled = {t.name: t for t in config.compiled_topics}
    wanted = set(topics) if topics is not None else None
    outcomes = []
    for name in stale_topics(config, store):
        if (wanted is not None and name not in wanted) or name not in compiled:
            continue
        version = store.labels_versions().get(name)
        examples = [Example(title, body, label) for title, body, label in store.training_examples(name)]
        started = time.perf_counter()
        positives = sum(1 for e in examples if e.label)
        if not can_train(examples):
            store.delete_model(name)
            outcomes.append(TrainOutcome(name, "removed", len(examples), positives, 0.0))
            continue
        model = train(compiled[name], examples, now=now(), labels_version=version or "")
        model = replace(model, labels_version=version or "")
        store.save_model(
            name,
            trained_at=model.trained_at or now(),
            labels=model.labels,
            positives=model.positives,
            labels_version=model.labels_version,
            bias=model.bias,
            weights=model.weights,
        )
        seconds = time.perf_counter() - started
        log.info("topic %s: model trained on %d labels in %.1f s", name, len(examples), seconds)
        outcomes.append(TrainOutcome(name, "trained", len(examples), positives, seconds, len(model.weights)))
    return outcomes


def refresh_models(
    config: Config, open_store: Callable[[], Store], now: Callable[[], datetime], current: dict[str, TopicModel]
) -> dict[str, TopicModel] | None:
    """For the daemon, in a worker thread: retrain stale topics on a connection of this thread's own
    (`open_store`, e.g. the daemon's `store.open_another`), and return the models to use when they differ from
    `current` (None when nothing changed)."""
    store = open_store()
    try:
        for outcome in retrain_changed(config, store, now):
            log.info("topic %s: model %s (%d labels)", outcome.topic, outcome.status, outcome.labels)
        stored = store.model_versions()
        wanted = {t.name for t in config.topics if t.learn}
        mine = {name: m.labels_version for name, m in current.items()}
        if {k: v for k, v in stored.items() if k in wanted} == mine:
            return None
        return models_in_use(config, store)
    finally:
        store.close()
