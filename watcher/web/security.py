"""What keeps the page safe: loopback by default, a login elsewhere, CSRF on every POST, strict headers.

The threat model (docs/reliability.md): the page can change the config, rematch and requeue alerts, so a
request must come from the analyst, not from a page they happen to visit or a neighbour on the network.
  * Loopback only, unless `[watcher] http` names another address; then the pages need the password from the
    environment variable `[watcher] web_password_env`, and without one they are off (only /healthz and
    /metrics answer, as before: a container publishing its port to the host's loopback keeps its probes).
  * On loopback, the Host header must name loopback too: a DNS-rebinding page cannot read or post.
  * Every state-changing request is a POST carrying a CSRF token (HMAC of a per-browser cookie with the
    process's secret), and a cross-origin Origin header is refused outright.
  * Responses forbid framing and inline scripts (Content-Security-Policy), and never reach the cache.
A login is a signed, expiring cookie; the secret is made at start, so a restart logs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "watcher_session"
CSRF_COOKIE = "watcher_csrf"
SESSION_TTL_S = 12 * 3600
OPEN_PATHS = ("/healthz", "/metrics")  # the ops endpoints answer as they always did: no login, GET and HEAD
PUBLIC_PREFIXES = ("/static/", "/login")  # reachable before logging in
LOGIN_FAILURES_ALLOWED = 10  # per client and minute; then the login form refuses until the minute passes
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # "no-referrer" makes browsers post with Origin: null
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    """'127.0.0.1', '::1', 'localhost' (and the rest of 127/8): True. Anything else, a name included: False."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Access:
    """The page's access policy for one listener, decided at start."""

    loopback: bool  # listening on loopback only
    password: str | None  # None: no login (loopback only)
    secure_cookies: bool = False  # public_url is https: cookies only travel over TLS
    public_host: str = ""  # public_url's host[:port]: forms posted from there are ours, whatever Host a proxy sends
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _failures: dict[str, list[float]] = field(default_factory=dict)

    @property
    def pages_enabled(self) -> bool:
        return self.loopback or bool(self.password)

    @property
    def login_required(self) -> bool:
        return bool(self.password)

    # --- tokens -------------------------------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()[:40]

    def csrf_token(self, cookie: str) -> str:
        return self._sign("csrf:" + cookie)

    def csrf_ok(self, cookie: str | None, token: str | None) -> bool:
        return bool(cookie and token) and hmac.compare_digest(self.csrf_token(cookie or ""), token or "")

    def new_session(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_TTL_S)
        nonce = secrets.token_hex(8)
        return f"{expires}.{nonce}.{self._sign(f'session:{expires}.{nonce}')}"

    def session_ok(self, value: str | None, now: float | None = None) -> bool:
        if not value or value.count(".") != 2:
            return False
        expires, nonce, signature = value.split(".")
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return False
        return hmac.compare_digest(self._sign(f"session:{expires}.{nonce}"), signature)

    def password_ok(self, given: str) -> bool:
        return bool(self.password) and hmac.compare_digest(given.encode(), (self.password or "").encode())

    def login_allowed(self, client: str, now: float | None = None) -> bool:
        now = now or time.time()
        recent = [t for t in self._failures.get(client, []) if now - t < 60]
        self._failures[client] = recent
        return len(recent) < LOGIN_FAILURES_ALLOWED

    def login_failed(self, client: str, now: float | None = None) -> None:
        self._failures.setdefault(client, []).append(now or time.time())


def cookies_of(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is the client's problem: treat it as none
                continue
    return {k: m.value for k, m in jar.items()}


def header_of(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def bearer_ok(access: Access, scope: Scope) -> bool:
    auth = header_of(scope, b"authorization") or ""
    return auth.lower().startswith("bearer ") and access.password_ok(auth[7:].strip())


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> tuple[bytes, bytes]:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return (b"set-cookie", "; ".join(parts).encode("latin-1"))


class Guard:
    """The ASGI middleware in front of every route: host check, login, CSRF cookie, Origin check, headers.

    The CSRF token itself is checked where the form is read (web/app.py `form_of`), since only the route reads
    the body; this layer makes sure every browser has the cookie the token is derived from, and refuses any POST
    whose Origin is another site's, before a route runs.
    """

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        access = self.access
        if not access.pages_enabled:
            await _plain(
                send,
                403,
                "The page is off: watcher listens on an address other than loopback and has no password.\n"
                "Set [watcher] web_password_env and that environment variable (README, 'The analyst's page').\n",
            )
            return
        host = header_of(scope, b"host") or ""
        if access.loopback and not is_loopback(_host_name(host)):
            await _plain(send, 400, "This page answers on loopback names only (127.0.0.1, localhost, [::1]).\n")
            return
        method = scope["method"]
        origin = header_of(scope, b"origin")
        ours = {host, access.public_host} - {""}
        if method not in ("GET", "HEAD") and origin is not None and urlsplit(origin).netloc not in ours:
            await _plain(send, 403, "Refused: a form posted from another site.\n")
            return
        cookies = cookies_of(scope)
        signed_in = not access.login_required or access.session_ok(cookies.get(SESSION_COOKIE))
        if not signed_in and bearer_ok(access, scope):
            signed_in = True
            scope.setdefault("state", {})["bearer"] = True  # no cookies involved: no CSRF to fear
        if not signed_in and not path.startswith(PUBLIC_PREFIXES):
            if method in ("GET", "HEAD"):
                target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
                await _redirect(send, "/login?next=" + quote(target, safe=""))
            else:
                await _plain(send, 403, "Log in first.\n")
            return
        csrf_cookie = cookies.get(CSRF_COOKIE) or ""
        new_cookie = not csrf_cookie
        if new_cookie:
            csrf_cookie = secrets.token_hex(16)
        state = scope.setdefault("state", {})
        state.update(csrf_cookie=csrf_cookie, csrf_token=access.csrf_token(csrf_cookie), signed_in=signed_in)
        state.setdefault("bearer", False)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"]
                headers += HEADERS
                if new_cookie:
                    headers.append(cookie_header(CSRF_COOKIE, csrf_cookie, secure=access.secure_cookies))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
            + HEADERS,
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"), *HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def access_for(host: str, password_env: str, public_url: str, environ: MutableMapping[str, str]) -> Access:
    """The policy for a listener on `host`: no login on loopback unless a password is set; elsewhere the password
    from `password_env` is required (without it the pages are off)."""
    password = environ.get(password_env, "") if password_env else ""
    return Access(
        loopback=is_loopback(host),
        password=password or None,
        secure_cookies=public_url.lower().startswith("https://"),
        public_host=urlsplit(public_url).netloc if public_url else "",
    )
