"""What every page shares: the WebContext, templates, forms and messages after a POST.

The application (site.py `build_app`) is served by the daemon's listener (`watcher run --http`, beside /healthz and /metrics) or
by `watcher ui` on the database alone. Pages are rendered on the server and work without JavaScript; the few
scripts in static/ only help (the rule checked as you type). Handlers run on the event loop and reach the store
only through `await store.call(...)`, on the store's own thread like every store call of the daemon, so a busy
database delays a page, never the loop (docs/architecture.md, "Runtime model"); the web code never speaks SQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..config import Config, load_config
from ..errors import ConfigError
from ..ops import Response as OpsResponse
from ..runtime import Runtime
from ..store import Store
from . import present
from .security import Access, cookie_header

log = logging.getLogger("watcher.web")

OpsHandler = Callable[[], Awaitable[OpsResponse]]
FLASH_COOKIE = "watcher_said"
MAX_FORM_BYTES = 256 * 1024  # a rule, a test text or a URL; nothing bigger is posted here


class ConfigFile:
    """The config in force for `watcher ui`: reread when the file's content changes; a broken file keeps the last
    good one and says why (the daemon does the same with its own watch)."""

    def __init__(self, config: Config) -> None:
        self.path = config.path
        self._config = config
        self._digest = self._read_digest()
        self.error: str | None = None

    def _read_digest(self) -> bytes | None:
        try:
            return hashlib.sha256(Path(self.path).read_bytes()).digest()
        except OSError:
            return None

    def __call__(self) -> Config:
        digest = self._read_digest()
        if digest != self._digest:
            self._digest = digest
            try:
                self._config = load_config(self.path)
                self.error = None
            except ConfigError as e:
                self.error = str(e)
        return self._config


@dataclass
class WebContext:
    """What the pages need, handed in by the daemon or `watcher ui`."""

    store: Store
    config: Callable[[], Config]  # the config in force (the daemon's, or ConfigFile)
    runtime: Runtime  # the Fetcher (address guard) and extraction workers for URLs typed into the page
    access: Access
    healthz: OpsHandler | None = None
    metrics: OpsHandler | None = None
    # After the page wrote config.toml: the daemon reloads at once (else its file watch would, within seconds).
    config_written: Callable[[Config], Awaitable[None]] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one config edit or rematch at a time
    previews: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))  # "try a rule" runs


# --- shared by the route modules ----------------------------------------------------------------------------


def context_of(request: Request) -> WebContext:
    return request.app.state.web


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("watcher.web", "templates"),
        autoescape=True,  # every template: feed text is hostile
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["marked"] = present.marked
    env.filters["json_list"] = present.json_list
    env.filters["link"] = present.link
    env.filters["clean"] = present.display_text
    return env


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    ctx = context_of(request)
    config = ctx.config()
    said = request.cookies.get(FLASH_COOKIE)
    state = request.state
    page = (
        _templates()
        .get_template(template)
        .render(
            request=request,
            path=request.url.path,
            csrf=state.csrf_token,
            login=ctx.access.login_required,
            topics=[t.name for t in config.topics],
            tz=config.timezone,
            when=lambda value: present.local_time(value, config.timezone),
            said=unquote(said)[:500] if said else "",
            config_error=getattr(ctx.config, "error", None),
            **values,
        )
    )
    response = HTMLResponse(page, status_code=status_code)
    if said:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def done(url: str, message: str, *, secure: bool = False) -> Response:
    """After a POST: back to a page (303, so a reload does not post again), saying what the click changed."""
    response = RedirectResponse(url, status_code=303)
    name, value = cookie_header(FLASH_COOKIE, quote(message[:500]), secure=secure, max_age=60)
    response.raw_headers.append((name, value))
    return response


async def form_of(request: Request) -> FormData:
    """The posted form, once its CSRF token is checked (every POST route reads its form through here)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    form = await request.form(max_files=0, max_fields=200)
    if not request.state.bearer and not context_of(request).access.csrf_ok(
        request.state.csrf_cookie, str(form.get("csrf", ""))
    ):
        raise HTTPException(403, "the form's security token is missing or stale: reload the page and try again")
    return form


def text_field(form: FormData, name: str, limit: int = 20_000) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def id_field(form: FormData, name: str, what: str) -> int:
    """A row id posted by a form (`article_id`, `story_id`); anything else is a 400 that names `what` is missing."""
    value = text_field(form, name, 20)
    if not value.isdigit():
        raise HTTPException(400, f"which {what}?")
    return int(value)
