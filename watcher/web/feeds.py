"""Feeds: their health (last success, errors, next check), adding one by URL with discovery (discover.py, through
the Fetcher and its address guard), removing one (config_edit.py). Like `watcher feeds add/remove`, the page
edits config.toml only; the daemon's next sync adds or disables the feed row, so history is never lost."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..config_edit import NewFeed, add_feeds, remove_feed
from ..config_reader import parse_duration
from ..discover import discover_feed
from ..display import display_text
from ..errors import ConfigError, FetchError, ParseError
from .app import context_of, done, form_of, render, text_field

MAX_NAME = 80
PAGES_WINDOW = timedelta(days=7)  # "pages not read" counts this week's articles


async def feeds_page(request: Request) -> Response:
    return await _feeds(request)


async def _feeds(request: Request, problem: str = "", values: dict | None = None) -> Response:
    ctx = context_of(request)
    config = ctx.config()
    health = {r["name"]: r for r in await ctx.store.call(ctx.store.feed_status)}
    pages = await ctx.store.call(ctx.store.feed_pages, ctx.clock() - PAGES_WINDOW)
    rows = [
        {
            "name": f.name,
            "url": f.url,
            "interval": config.feed_interval(f),
            "enabled": f.enabled,
            "pages": pages.get(f.name, (0, 0)),
            **_health(health, f.name),
        }
        for f in config.feeds
    ]
    return render(
        request, "feeds.html", status_code=422 if problem else 200, rows=rows, problem=problem, form=values or {}
    )


def _health(health: dict, name: str) -> dict:
    h = health.get(name, {})
    return {
        "status": h.get("last_status") or "new",
        "error_count": h.get("error_count", 0),
        "last_error": h.get("last_error") or "",
        "last_success_at": h.get("last_success_at"),
        "next_check_at": h.get("next_check_at"),
        "matches": h.get("matches", 0),
        "moved_to": h.get("moved_to") or "",
        "error_kind": h.get("last_error_kind") or "",
    }


async def add_feed(request: Request) -> Response:
    ctx = context_of(request)
    form = await form_of(request)
    url = text_field(form, "url", 2000).strip()
    name = " ".join(text_field(form, "name", 500).split())
    interval = text_field(form, "interval", 20).strip() or None
    values = {"url": url, "name": name, "interval": interval or ""}
    problem = ""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        problem = "Give an http:// or https:// address (a feed, or any page of the site)."
    elif interval is not None and not _duration_ok(interval):
        problem = f"Not a time between polls: {interval!r} (try 30m, 2h)."
    if not problem:
        try:
            found = await discover_feed(ctx.runtime.fetcher, url)
        except (FetchError, ParseError) as e:
            problem = str(e)
    if not problem:
        config = ctx.config()
        existing = {f.url: f.name for f in config.feeds}
        chosen = _clean_name(name or found.title or urlsplit(found.url).hostname or found.url)
        if found.url in existing:
            problem = f"{found.url} is in the config already, as {existing[found.url]!r}."
        elif chosen in {f.name for f in config.feeds}:
            problem = f"A feed named {chosen!r} exists; give another name."
    if problem:
        return await _feeds(request, problem, values)
    async with ctx.lock:
        try:
            config = add_feeds(ctx.config().path, [NewFeed(chosen, found.url, interval)])
        except ConfigError as e:
            return await _feeds(request, str(e), values)
        if ctx.config_written is not None:
            await ctx.config_written(config)
    how = {"feed": "the address is a feed", "link": "announced by the page", "path": "found at a usual path"}
    return done(
        "/feeds",
        f"Added {chosen!r}: {found.url} ({how.get(found.found_by, found.found_by)}; {found.entries} entries now). "
        "The daemon polls it within seconds.",
        secure=ctx.access.secure_cookies,
    )


async def remove(request: Request) -> Response:
    ctx = context_of(request)
    form = await form_of(request)
    name = text_field(form, "name", 500)
    async with ctx.lock:
        try:
            config = remove_feed(ctx.config().path, name)
        except ConfigError as e:
            return await _feeds(request, str(e), {})
        if ctx.config_written is not None:
            await ctx.config_written(config)
    return done(
        "/feeds",
        f"Removed {display_text(name, MAX_NAME)!r} from the config; its stored articles stay searchable.",
        secure=ctx.access.secure_cookies,
    )


def _duration_ok(text: str) -> bool:
    try:
        return parse_duration(text) > timedelta(0)
    except ValueError:
        return False


def _clean_name(text: str) -> str:
    name = display_text(text)
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1].rstrip() + "…"


def routes() -> list[Route]:
    return [
        Route("/feeds", feeds_page),
        Route("/feeds/add", add_feed, methods=["POST"]),
        Route("/feeds/remove", remove, methods=["POST"]),
    ]
