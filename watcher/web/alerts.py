"""Alerts: the outbox per channel and status, the deliveries that failed (pending again after an error) or died,
and putting dead ones back in the queue (store.retry_dead, as `watcher alerts retry` does)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .app import context_of, done, form_of, render

SHOWN = 100


async def alerts_page(request: Request) -> Response:
    ctx = context_of(request)
    store = ctx.store
    counts: dict[str, dict[str, int]] = {}
    for row in await store.call(store.outbox_by_channel):
        counts.setdefault(row["channel"], {})[row["status"]] = row["n"]
    pending = await store.call(store.list_deliveries, status="pending", limit=SHOWN)
    return render(
        request,
        "alerts.html",
        counts=counts,
        dead=await store.call(store.list_deliveries, status="dead", limit=SHOWN),
        failing=[d for d in pending if d["attempts"] > 0 and d["last_error"]],
        pending=[d for d in pending if not (d["attempts"] > 0 and d["last_error"])],
        sent=await store.call(store.list_deliveries, status="sent", limit=20),
    )


async def retry(request: Request) -> Response:
    ctx = context_of(request)
    form = await form_of(request)
    ids = [int(v) for v in form.getlist("id") if isinstance(v, str) and v.isdigit()]
    channel = str(form.get("channel", "")) or None
    if not ids and channel is None:
        return done("/alerts", "Nothing chosen to retry.", secure=ctx.access.secure_cookies)
    n = await ctx.store.call(ctx.store.retry_dead, ctx.clock(), channel=channel, ids=ids)
    what = f"{n} dead alert(s) put back in the queue" + (f" for channel {channel}" if channel and not ids else "")
    return done("/alerts", what + "; they go out on the next alert pass.", secure=ctx.access.secure_cookies)


def routes() -> list[Route]:
    return [Route("/alerts", alerts_page), Route("/alerts/retry", retry, methods=["POST"])]
