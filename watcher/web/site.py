"""The application: the Guard (security.py) around Starlette's route table, the ops endpoints, login and logout."""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import alerts, feeds, matches, stories, teach, tryrule
from .app import OpsHandler, WebContext, context_of, form_of, render, text_field
from .security import SESSION_COOKIE, SESSION_TTL_S, Guard, cookie_header

log = logging.getLogger("watcher.web")


def _ops_route(path: str, handler: OpsHandler) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            r = await handler()
        except Exception:  # a bug here must not take the listener down; same answer as before the page existed
            log.exception("ops endpoint: bug while answering %s", path)
            return PlainTextResponse(
                "internal error; see the daemon's log\n", 500, headers={"cache-control": "no-store"}
            )
        return Response(r.body, r.status, headers={"cache-control": "no-store"}, media_type=r.content_type)

    return Route(path, endpoint, methods=["GET", "HEAD"])


async def _login_page(request: Request) -> Response:
    ctx = context_of(request)
    if request.method == "POST":
        form = await form_of(request)
        client = request.client.host if request.client else "?"
        if not ctx.access.login_allowed(client):
            return render(request, "login.html", 429, error="Too many failed attempts; wait a minute.", next="/")
        if ctx.access.password_ok(text_field(form, "password", 1000)):
            target = text_field(form, "next", 2000)
            # Only a path of this site: never "//evil.example" or "/\\evil.example", which browsers read as another host.
            target = target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"
            response = RedirectResponse(target, status_code=303)
            name, value = cookie_header(
                SESSION_COOKIE, ctx.access.new_session(), secure=ctx.access.secure_cookies, max_age=SESSION_TTL_S
            )
            response.raw_headers.append((name, value))
            return response
        ctx.access.login_failed(client)
        return render(request, "login.html", 403, error="Wrong password.", next=text_field(form, "next", 2000))
    return render(request, "login.html", error="", next=request.query_params.get("next", "/"))


async def _logout(request: Request) -> Response:
    await form_of(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _home(request: Request) -> Response:
    return RedirectResponse("/stories", status_code=303)


def build_app(context: WebContext) -> Any:
    """The ASGI application: the Guard (security.py) around Starlette's routes."""
    routes: list[BaseRoute] = []
    if context.healthz is not None:
        routes.append(_ops_route("/healthz", context.healthz))
    if context.metrics is not None:
        routes.append(_ops_route("/metrics", context.metrics))
    routes += [
        Route("/", _home),
        Route("/login", _login_page, methods=["GET", "POST"]),
        Route("/logout", _logout, methods=["POST"]),
        *stories.routes(),
        *matches.routes(),
        *teach.routes(),
        *tryrule.routes(),
        *feeds.routes(),
        *alerts.routes(),
        Mount("/static", StaticFiles(packages=[("watcher.web", "static")]), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        if request.url.path in ("/healthz", "/metrics") or "csrf_token" not in request.scope.get("state", {}):
            return PlainTextResponse(f"{detail}\n", status)
        return render(request, "error.html", status, status=status, detail=detail)

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.web = context
    return Guard(app, context.access)
