"""Try a rule: edit a topic's rule with the error shown at its position, run it against a text, a URL (through the
Fetcher, so the address guard applies) or the stored articles of the last N days, see what it would add and drop
compared with the current rule, then save it (config_edit.set_topic_rule: checked, comments kept) and rematch."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config_edit import set_topic_rule
from ..errors import ConfigError, ExtractError, FetchError, RuleError
from ..learn.retrain import models_in_use
from ..rematch import RulePreview, preview_rule, rematch
from ..rules import CompiledTopic, Explanation, TopicConfig, compile_topic, explain
from ..store import Store
from . import present
from .app import context_of, done, form_of, render, text_field

MAX_RULE = 10_000
MAX_DAYS = 365
FORM_FIELDS = ("against", "text", "title", "url", "days")
FRESH_FORM = {"against": "days", "text": "", "title": "", "url": "", "days": "7"}


def _topic(request: Request) -> tuple[TopicConfig, CompiledTopic | None]:
    config = context_of(request).config()
    name = request.path_params["topic"]
    for topic in config.topics:
        if topic.name == name:
            compiled = next((c for c in config.compiled_topics if c.name == name), None)
            return topic, compiled
    raise HTTPException(404, f"no topic named {name!r}")


def _compile(topic: TopicConfig, rule: str, terms: dict[str, str]) -> tuple[CompiledTopic | None, RuleError | None]:
    try:
        return compile_topic(
            TopicConfig(topic.name, rule, topic.description, topic.min_score, topic.urgent), terms
        ), None
    except RuleError as e:
        return None, e


async def rules_page(request: Request) -> Response:
    config = context_of(request).config()
    return render(request, "rules.html", all_topics=config.topics)


async def rule_page(request: Request) -> Response:
    topic, _ = _topic(request)
    return render(request, "rule.html", topic=topic, rule=topic.rule, error=None, result=None, form=FRESH_FORM)


async def check_rule(request: Request) -> Response:
    """For the script on the rule page: does the rule compile, and where is the error (a read, so a GET)."""
    topic, _ = _topic(request)
    rule = request.query_params.get("rule", "")[:MAX_RULE]
    _, error = _compile(topic, rule, context_of(request).config().terms)
    if error is None:
        return JSONResponse({"ok": True})
    return JSONResponse({"ok": False, "message": error.message, "position": error.position, "text": error.describe()})


async def try_rule(request: Request) -> Response:
    ctx = context_of(request)
    topic, current = _topic(request)
    form = await form_of(request)
    rule = text_field(form, "rule", MAX_RULE)
    values = {k: text_field(form, k) for k in FORM_FIELDS}
    candidate, error = _compile(topic, rule, ctx.config().terms)
    result: dict | None = None
    if candidate is not None:
        result = await _run(request, values, current, candidate)
    return render(
        request,
        "rule.html",
        status_code=200 if error is None else 422,
        topic=topic,
        rule=rule,
        error=error,
        spans=present.rule_error_spans(rule, error.position if error else None),
        result=result,
        form=values,
    )


async def _run(request: Request, values: dict[str, str], current: CompiledTopic | None, candidate: CompiledTopic):
    ctx = context_of(request)
    against = values["against"] or "days"
    if against == "days":
        days = int(values["days"]) if values["days"].isdigit() else 7
        days = max(1, min(days, MAX_DAYS))
        # Matching 10,000 articles takes seconds (bench/bench_web.py): in a thread, on a connection of its own, so
        # the daemon's loop keeps polling and answering meanwhile; one preview at a time.
        async with ctx.previews:
            preview = await asyncio.to_thread(
                _preview_on_another_connection, ctx.store, current, candidate, ctx.clock() - timedelta(days=days)
            )
        return {"kind": "days", "days": days, "preview": preview}
    title, text = values["title"], values["text"]
    if against == "url":
        url = values["url"].strip()
        if not url.lower().startswith(("http://", "https://")):
            return {"kind": "problem", "message": "give an http:// or https:// address"}
        try:
            page = await ctx.runtime.fetcher.fetch_page(url)  # the address guard and size caps apply
            extracted = await ctx.runtime.workers.extract(page)
        except (FetchError, ExtractError) as e:
            return {"kind": "problem", "message": str(e)}
        title, text = title or extracted.title, extracted.text
    new: Explanation = await asyncio.to_thread(explain, candidate, title, text)
    old: Explanation | None = await asyncio.to_thread(explain, current, title, text) if current is not None else None
    return {"kind": "text", "new": new, "old": old, "title": title}


def _preview_on_another_connection(
    daemon_store: Store, current: CompiledTopic | None, candidate: CompiledTopic, since: datetime
) -> RulePreview:
    store = daemon_store.open_another()
    try:
        return preview_rule(store, current, candidate, since)
    finally:
        store.close()


async def save_rule(request: Request) -> Response:
    ctx = context_of(request)
    topic, _ = _topic(request)
    form = await form_of(request)
    rule = text_field(form, "rule", MAX_RULE)
    async with ctx.lock:
        try:
            config = set_topic_rule(ctx.config().path, topic.name, rule)
        except ConfigError as e:
            _, error = _compile(topic, rule, ctx.config().terms)
            return render(
                request,
                "rule.html",
                status_code=422,
                topic=topic,
                rule=rule,
                error=error,
                spans=present.rule_error_spans(rule, error.position if error else None),
                save_error=None if error else str(e),
                result=None,
                form=FRESH_FORM,
            )
        compiled = [t for t in config.compiled_topics if t.name == topic.name]
        # On the store's thread (its one connection, between the daemon's writes), with the topic's model if it
        # learns from labels: a match the model holds back is held back here too, as in a poll.
        models = await ctx.store.call(models_in_use, config, ctx.store)
        result = await ctx.store.call(rematch, ctx.store, compiled, config.routes(), ctx.clock(), models=models)
        if ctx.config_written is not None:
            await ctx.config_written(config)
    return done(
        f"/rules/{topic.name}",
        f"Saved the rule of {topic.name} to {config.path}. Rematched {result.checked} stored articles: "
        f"{result.added} new matches, {result.retracted} retracted, {result.queued} alerts queued.",
        secure=ctx.access.secure_cookies,
    )


def routes() -> list[Route]:
    return [
        Route("/rules", rules_page),
        Route("/rules/{topic}", rule_page),
        Route("/rules/{topic}/check", check_rule),
        Route("/rules/{topic}/try", try_rule, methods=["POST"]),
        Route("/rules/{topic}/save", save_rule, methods=["POST"]),
    ]
