"""Teach the topics: "relevant" / "not relevant" on every match and story, and the queue of the models' calls
(possible matches to confirm or dismiss, held-back matches to restore). Each click writes a label through the
store (labels.py, the one way labels are made; the daemon retrains the topic's model from them within a minute)
and says what it changed: a dismissed match leaves the lists and its unsent alerts are skipped; a confirmed call
becomes a match (a held-back one is alerted now)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..display import display_text
from ..errors import StoreError
from ..learn.model import describe_feature
from .app import WebContext, context_of, done, form_of, id_field, render, text_field

SOURCE = "web"  # labels.source: where the label was given


def _back(form: FormData, default: str) -> str:
    """Where to return after the click: a path of this site only."""
    back = text_field(form, "back", 2000)
    return back if back.startswith("/") and not back.startswith(("//", "/\\")) else default


def _topic(ctx: WebContext, form: FormData) -> str:
    topic = text_field(form, "topic", 200)
    if topic not in {t.name for t in ctx.config().topics}:
        raise HTTPException(400, f"no topic named {topic!r}")
    return topic


def _verdict(form: FormData) -> str:
    verdict = text_field(form, "verdict", 10)
    if verdict not in ("yes", "no"):
        raise HTTPException(400, "a verdict is yes or no")
    return verdict


async def _counts(ctx: WebContext, topic: str) -> str:
    row = next((r for r in await ctx.store.call(ctx.store.label_counts) if r["topic"] == topic), None)
    yes, no = (row["yes"] or 0, row["no"] or 0) if row else (0, 0)
    return (
        f"{topic} now has {yes + no} label(s) ({yes} relevant, {no} not); the daemon retrains its model from them "
        "within a minute (`watcher labels train` does it now)."
    )


async def _label(ctx: WebContext, article_id: int, topic: str, verdict: str) -> tuple[str, int]:
    """Write one label; for "no", skip the match's unsent alerts. Returns (the article's title, alerts skipped)."""
    try:
        new = await ctx.store.call(
            ctx.store.label_article, article_id, topic, verdict, source=SOURCE, who=SOURCE, now=ctx.clock()
        )
    except StoreError as e:
        raise HTTPException(404, str(e)) from None
    skipped = 0
    if verdict == "no":
        skipped = await ctx.store.call(
            ctx.store.skip_pending_alerts, article_id, topic, "labelled not relevant on the page"
        )
    return display_text(new.title, 120), skipped


async def teach_match(request: Request) -> Response:
    ctx = context_of(request)
    form = await form_of(request)
    topic, verdict = _topic(ctx, form), _verdict(form)
    article = id_field(form, "article_id", "article")
    title, skipped = await _label(ctx, article, topic, verdict)
    if verdict == "yes":
        what = f"Labelled “{title}” relevant for {topic}."
    else:
        what = f"Labelled “{title}” not relevant for {topic}: it leaves the {topic} lists"
        what += f", and {skipped} alert(s) not yet sent will not be." if skipped else "."
    return done(_back(form, "/matches"), f"{what} {await _counts(ctx, topic)}", secure=ctx.access.secure_cookies)


async def teach_story(request: Request) -> Response:
    ctx = context_of(request)
    form = await form_of(request)
    topic, verdict = _topic(ctx, form), _verdict(form)
    story = id_field(form, "story_id", "story")
    articles = await ctx.store.call(ctx.store.story_matches, story, topic)
    skipped = 0
    for article in articles:
        skipped += (await _label(ctx, article, topic, verdict))[1]
    if verdict == "yes":
        what = f"Labelled story {story} relevant for {topic} ({len(articles)} article(s))."
    else:
        what = (
            f"Labelled story {story} not relevant for {topic} ({len(articles)} article(s)): it leaves the {topic} lists"
        )
        what += f", and {skipped} alert(s) not yet sent will not be." if skipped else "."
    return done(_back(form, "/stories"), f"{what} {await _counts(ctx, topic)}", secure=ctx.access.secure_cookies)


async def teach_call(request: Request) -> Response:
    """The queue: confirm (label yes; the call becomes a match) or dismiss (label no) a model's call."""
    ctx = context_of(request)
    form = await form_of(request)
    topic, verdict = _topic(ctx, form), _verdict(form)
    article = id_field(form, "article_id", "article")
    title, _ = await _label(ctx, article, topic, verdict)
    if verdict == "no":
        what = f"Dismissed “{title}” for {topic}: it stays out of the {topic} lists."
    else:
        try:
            kind, queued = await ctx.store.call(
                ctx.store.confirm_model_call, article, topic, ctx.clock(), ctx.config().routes()
            )
        except StoreError as e:
            raise HTTPException(404, str(e)) from None
        if kind == "held":
            what = f"Restored “{title}” as a match of {topic}; {queued} alert(s) queued."
        else:
            what = f"Confirmed “{title}” as a match of {topic} (it was in a digest already: no new alert)."
    return done(_back(form, "/teach"), f"{what} {await _counts(ctx, topic)}", secure=ctx.access.secure_cookies)


async def queue_page(request: Request) -> Response:
    ctx = context_of(request)
    topic = request.query_params.get("topic", "")[:200] or None
    rows = await ctx.store.call(ctx.store.teaching_queue, topic=topic)
    for row in rows:
        row["reasons"] = [(describe_feature(name), weight) for name, weight in row["features"]]
    return render(
        request,
        "teach.html",
        possible=[r for r in rows if r["verdict"] == "possible"],
        held=[r for r in rows if r["verdict"] == "held"],
        topic=topic or "",
        counts=await ctx.store.call(ctx.store.label_counts),
    )


def routes() -> list[Route]:
    return [
        Route("/teach", queue_page),
        Route("/teach/match", teach_match, methods=["POST"]),
        Route("/teach/story", teach_story, methods=["POST"]),
        Route("/teach/call", teach_call, methods=["POST"]),
    ]
