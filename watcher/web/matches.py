"""The matches per topic (newest first, filtered by topic, time and feed, or searched) and an article's page:
its sources, its extracted text, and why each topic's rule matched it (rules.explain)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import StoreError
from ..learn.model import TopicModel, describe_feature, score_topic
from ..learn.retrain import models_in_use
from ..rules import ArticleText, CompiledTopic, Explanation, explain, match_text
from . import present
from .app import context_of, render

PAGE_SIZE = 50


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    return {k: q.get(k, "").strip()[:500] for k in ("topic", "feed", "since", "q")}


async def matches_page(request: Request) -> Response:
    ctx = context_of(request)
    f = _filters(request)
    page = max(1, int(request.query_params.get("page", "1"))) if request.query_params.get("page", "1").isdigit() else 1
    error = ""
    try:
        since = present.since_of(f["since"], ctx.clock())
    except ValueError:
        since, error = None, f"not a time span: {f['since']!r} (try 24h, 7d)"
    rows: list[dict] = []
    if f["q"]:
        try:
            found = await ctx.store.call(
                ctx.store.search, f["q"], topic=f["topic"] or None, feed=f["feed"] or None, since=since, limit=PAGE_SIZE
            )
        except StoreError as e:
            found, error = [], str(e)
        rows = [
            {
                "article_id": r["id"],
                "topic": r["topics"] or "",
                "title": r["title"],
                "url": r["url"],
                "published_at": r["published_at"],
                "matched_at": None,
                "snippet": r["snippet"],
                "terms": "[]",
                "feeds_text": r["feeds"] or "",
            }
            for r in found
        ]
    else:
        rows = await ctx.store.call(
            ctx.store.latest_matches,
            topic=f["topic"] or None,
            feed=f["feed"] or None,
            since=since,
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
        for r in rows:
            r["feeds_text"] = ", ".join(present.json_list(r["feeds"]))
    more = len(rows) > PAGE_SIZE
    feeds = [f.name for f in ctx.config().feeds]  # the filter's choices (the store's feed_status counts matches: slow)
    return render(
        request,
        "matches.html",
        rows=rows[:PAGE_SIZE],
        filters=f,
        feeds=feeds,
        since_choices=present.SINCE_CHOICES,
        page=page,
        more=more and not f["q"],
        error=error,
    )


async def article_page(request: Request) -> Response:
    ctx = context_of(request)
    article = await ctx.store.call(ctx.store.article_page, int(request.path_params["article_id"]))
    if article is None:
        raise HTTPException(404, "no such article")
    config = ctx.config()
    matched = {m["topic"]: m for m in article["matches"]}
    topics = [t for t in config.compiled_topics if t.name in matched or len(config.compiled_topics) <= 12]
    store = ctx.store
    models = await store.call(models_in_use, config, store)
    # Matching is bounded (docs/reliability.md) but not free on a long text: off the loop, which keeps polling.
    explanations, reasons = await asyncio.to_thread(_why, topics, models, article["title"], article["body"])
    labels = await store.call(store.labels_of, [(article["id"], "")])
    return render(
        request,
        "article.html",
        article=article,
        matched=matched,
        explanations=explanations,
        labels={topic: label for (_, topic), label in labels.items()},
        calls={c["topic"]: c for c in await store.call(store.model_calls_of, article["id"])},
        reasons=reasons,
        paragraphs=present.paragraphs(article["body"]),
    )


def _why(
    topics: list[CompiledTopic], models: Mapping[str, TopicModel], title: str, body: str
) -> tuple[list[Explanation], dict[str, dict | None]]:
    """Each topic's explanation (the rule's clauses) and its model's reasons, for an article's page."""
    art = ArticleText(title, body)
    explanations = [explain(topic, title, body) for topic in topics]
    return explanations, {t.name: _model_reasons(models.get(t.name), t, art) for t in topics}


def _model_reasons(model: TopicModel | None, topic: CompiledTopic, art: ArticleText) -> dict | None:
    """The topic's model on this article (when it has one): its probability and strongest features both ways."""
    if model is None:
        return None
    scored = score_topic(model, topic, art, next(iter(match_text([topic], art)), None))
    named = lambda pairs: [(describe_feature(name), weight) for name, weight in pairs]
    return {
        "probability": scored.probability,
        "towards": named(model.strongest(scored.pairs, towards=True)),
        "away": named(model.strongest(scored.pairs, towards=False)),
        "labels": model.labels,
    }


def routes() -> list[Route]:
    return [
        Route("/matches", matches_page),
        Route("/article/{article_id:int}", article_page),
    ]
