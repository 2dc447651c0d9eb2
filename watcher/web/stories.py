"""Stories: one line per news event however many outlets carried it (stories.py decides, store/stories.py keeps),
newest first, filtered by topic, time and feed; a story opens to its articles, their sources and matches, with
the analyst's fixes: take an article out into a story of its own, or merge another story into this one."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import StoreError
from . import present
from .app import context_of, done, form_of, id_field, render, text_field

PAGE_SIZE = 30


async def stories_page(request: Request) -> Response:
    ctx = context_of(request)
    q = request.query_params
    filters = {k: q.get(k, "").strip()[:200] for k in ("topic", "feed", "since", "q")}
    page = int(q["page"]) if q.get("page", "").isdigit() and int(q["page"]) > 0 else 1
    error = ""
    try:
        since = present.since_of(filters["since"], ctx.clock())
    except ValueError:
        since, error = None, f"not a time span: {filters['since']!r} (try 24h, 7d)"
    try:
        rows = await ctx.store.call(
            ctx.store.story_list,
            topic=filters["topic"] or None,
            feed=filters["feed"] or None,
            since=since,
            query=filters["q"] or None,
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
    except StoreError as e:
        rows, error = [], str(e)
    for row in rows[:PAGE_SIZE]:
        reports = await ctx.store.call(ctx.store.story_sources, row["id"])
        row["outlets"] = list(dict.fromkeys(r["feed"] for r in reports))
        row["reports"] = reports
    return render(
        request,
        "stories.html",
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
        filters=filters,
        feeds=[f.name for f in ctx.config().feeds],
        since_choices=present.SINCE_CHOICES,
        error=error,
    )


async def story_page(request: Request) -> Response:
    ctx = context_of(request)
    story = await ctx.store.call(ctx.store.story_page, int(request.path_params["story_id"]))
    if story is None:
        raise HTTPException(404, "no such story")
    return render(request, "story.html", story=story)


async def split(request: Request) -> Response:
    ctx = context_of(request)
    form = await form_of(request)
    article = id_field(form, "article_id", "article")
    try:
        new_story = await ctx.store.call(ctx.store.split_article, article, ctx.clock())
    except StoreError as e:
        raise HTTPException(404, str(e)) from None
    return done(
        f"/story/{new_story}",
        f"Article {article} is now a story of its own ({new_story}); it stays there, and later reports of the "
        "story it left will not be drawn to it.",
        secure=ctx.access.secure_cookies,
    )


async def merge(request: Request) -> Response:
    ctx = context_of(request)
    into = int(request.path_params["story_id"])
    form = await form_of(request)
    other = text_field(form, "other", 20).strip().lstrip("#")
    if not other.isdigit():
        return done(
            f"/story/{into}", "Give the number of the story to merge into this one.", secure=ctx.access.secure_cookies
        )
    try:
        moved = await ctx.store.call(ctx.store.merge_stories, into, int(other), ctx.clock())
    except StoreError as e:
        return done(f"/story/{into}", str(e), secure=ctx.access.secure_cookies)
    return done(
        f"/story/{into}",
        f"Story {other} merged into {into}: {moved} article(s) moved, and they stay here.",
        secure=ctx.access.secure_cookies,
    )


def routes() -> list[Route]:
    return [
        Route("/stories", stories_page),
        Route("/story/{story_id:int}", story_page),
        Route("/story/{story_id:int}/split", split, methods=["POST"]),
        Route("/story/{story_id:int}/merge", merge, methods=["POST"]),
    ]
