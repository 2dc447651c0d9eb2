"""A topic's model as plain numbers, and what it decides about one article (pure: no I/O, no learner).

A model is a bias and one weight per named feature (features.py); its score is the logistic of their sum, a
dict lookup per feature of the article. With the rule's verdict it decides:
  * the rule matched and the model's probability is below `hold_below`  -> held back (stored, not alerted);
  * the rule missed and the probability is at least `possible_above`    -> a possible match (digest only);
  * otherwise the rule's verdict stands. A topic without a model is matched exactly as its rule says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat

from ..models import Match, ModelCall
from ..rules import ArticleText, CompiledTopic, match_text
from ..rules.snippets import SNIPPET_CHARS
from .features import RULE_MATCH, RULE_VALUE, rule_features, text_features, weighted

# Documented in docs/rules.md ("Topics that learn from labels"); each topic may set its own.
DEFAULT_HOLD_BELOW = 0.1
DEFAULT_POSSIBLE_ABOVE = 0.9
STRONGEST = 6  # features shown with a verdict


@dataclass(frozen=True, slots=True)
class TopicModel:
    """A trained model: weights by feature name, and the thresholds it is used with."""

    topic: str
    bias: float
    weights: Mapping[str, float] = field(compare=False, repr=False)
    labels: int = 0  # the labels it was trained on
    positives: int = 0
    trained_at: datetime | None = None
    labels_version: str = ""  # the labels it was trained on, as the store summarises them: retrain when it changes
    hold_below: float = DEFAULT_HOLD_BELOW
    possible_above: float = DEFAULT_POSSIBLE_ABOVE

    def probability(self, pairs: Sequence[tuple[str, float]]) -> float:
        weights = self.weights
        z = self.bias
        for name, value in pairs:
            w = weights.get(name)
            if w is not None:
                z += w * value
        return _logistic(z)

    def score(self, text: Sequence[str], rule: Sequence[str]) -> float:
        """probability() of weighted(text, rule), without building the pairs: the per-article path."""
        get = self.weights.get
        scale = 1.0 / math.sqrt(len(text)) if text else 0.0
        z = self.bias + scale * sum(map(get, text, repeat(0.0))) + RULE_VALUE * sum(map(get, rule, repeat(0.0)))
        return _logistic(z)

    def strongest(
        self, pairs: Sequence[tuple[str, float]], towards: bool, n: int = STRONGEST
    ) -> list[tuple[str, float]]:
        """The features that pushed the score most towards the topic (towards=True) or away from it."""
        weights = self.weights
        found = [(name, weights[name] * value) for name, value in pairs if name in weights]
        found = [(name, c) for name, c in found if (c > 0) == towards and c != 0]
        found.sort(key=lambda x: -abs(x[1]))
        return [(name, round(weights[name], 3)) for name, _ in found[:n]]


def _logistic(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class Scored:
    """One article under one topic: the rule's match (or None) and the model's probability."""

    match: Match | None
    probability: float
    pairs: tuple[tuple[str, float], ...]


def score_topic(model: TopicModel, topic: CompiledTopic, art: ArticleText, match: Match | None) -> Scored:
    text, rule = text_features(art), rule_features(topic, art, match is not None)
    return Scored(match, model.score(text, rule), tuple(weighted(text, rule)))


def judge_article(
    topics: Sequence[CompiledTopic], models: Mapping[str, TopicModel], title: str, body: str
) -> tuple[tuple[Match, ...], tuple[ModelCall, ...]]:
    """The rule matches that stand, and the model's calls (held back, possible) for topics with a model."""
    art = ArticleText(title, body)
    return apply_models(topics, models, art, match_text(topics, art))


def apply_models(
    topics: Sequence[CompiledTopic],
    models: Mapping[str, TopicModel],
    art: ArticleText | tuple[str, str],
    matches: Sequence[Match],
) -> tuple[tuple[Match, ...], tuple[ModelCall, ...]]:
    """The models' verdicts on matches found already (by a worker process): which stand, which are held back,
    and which misses are possible matches. `art` may be (title, body); it is cut into words only when a model
    is there to read it."""
    if not models:
        return tuple(matches), ()
    if isinstance(art, tuple):
        art = ArticleText(*art)
    by_topic = {m.topic: m for m in matches}
    kept: list[Match] = []
    calls: list[ModelCall] = []
    for topic in topics:
        model = models.get(topic.name)
        match = by_topic.get(topic.name)
        if model is None:
            if match is not None:
                kept.append(match)
            continue
        call = decide(model, topic, art, match)
        if call is None:
            if match is not None:
                kept.append(match)
        else:
            calls.append(call)
    return tuple(kept), tuple(calls)


def decide(model: TopicModel, topic: CompiledTopic, art: ArticleText, match: Match | None) -> ModelCall | None:
    """A held-back or possible match, or None when the rule's verdict stands."""
    text, rule = text_features(art), rule_features(topic, art, match is not None)
    p = model.score(text, rule)
    if (match is not None and p >= model.hold_below) or (match is None and p < model.possible_above):
        return None  # the common case: no pairs built, nothing explained
    scored = Scored(match, p, tuple(weighted(text, rule)))
    if match is not None and p < model.hold_below:
        return ModelCall(
            topic=topic.name,
            verdict="held",
            probability=round(p, 4),
            rule_score=match.score,
            terms=match.terms,
            snippet=match.snippet,
            features=tuple(model.strongest(scored.pairs, towards=False)),
        )
    if match is None and p >= model.possible_above:
        features = tuple(model.strongest(scored.pairs, towards=True))
        return ModelCall(
            topic=topic.name,
            verdict="possible",
            probability=round(p, 4),
            rule_score=0.0,
            terms=tuple(describe_feature(name) for name, _ in features),
            snippet=lead_snippet(art.body or art.title),
            features=features,
        )
    return None


def lead_snippet(text: str) -> str:
    """The start of the text, cut at a word: a possible match has no rule hits to centre a snippet on."""
    text = " ".join(text.split())
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text.rfind(" ", 0, SNIPPET_CHARS)
    return text[: cut if cut > SNIPPET_CHARS // 2 else SNIPPET_CHARS] + "…"


def describe_feature(name: str) -> str:
    """A feature name as a person reads it: 'w:troop' -> 'word troop', 'c: dis' -> 'letters " dis"'."""
    kind, _, value = name.partition(":")
    if kind == "rule":
        return "the rule matched" if name == RULE_MATCH else f"rule part {value}"
    return {
        "w": f"word {value}",
        "t": f"title word {value}",
        "b": f"words {value.replace('_', ' ')}",
        "c": f'letters "{value}"',
    }.get(kind, name)
