"""A real HTTP server on 127.0.0.1 for tests: routes that serve bytes, honour conditional GET, or misbehave.

It runs in a thread of the test process (ThreadingHTTPServer), so tests talk to it over real sockets with the
real httpx client, and can both script its answers and read back what it received.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/xml"
    etag: bool = True  # answer If-None-Match / If-Modified-Since with 304
    last_modified: str | None = "Wed, 25 Nov 2026 10:00:00 GMT"
    gzip: bool = False
    handler: Callable[["Handler"], None] | None = None  # full control, for misbehaving servers


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


class Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        site = self.server.site
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with site.lock:
            site.requests.append(request)
            route = site.routes.get(self.path.split("?")[0]) or site.routes.get(self.path)
        if route is None:
            return self.send_bytes(404, b"not found", {"content-type": "text/plain"})
        if route.handler:
            return route.handler(self)
        etag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"'
        if route.status == 200 and route.etag:
            inm = request.headers.get("if-none-match")
            ims = request.headers.get("if-modified-since")
            if (inm and inm == etag) or (not inm and ims and ims == route.last_modified):
                return self.send_bytes(304, b"", {"etag": etag})
        headers = {"content-type": route.content_type, **route.headers}
        if route.etag:
            headers["etag"] = etag
        if route.last_modified:
            headers["last-modified"] = route.last_modified
        body = route.body
        if route.gzip:
            body = gzip.compress(body)
            headers["content-encoding"] = "gzip"
        self.send_bytes(route.status, body, headers)

    def send_bytes(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    site: "LocalSite"


class LocalSite:
    """`site.add("/feed.xml", body)`, then fetch `site.url("/feed.xml")`; `site.requests` records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # hanging handlers wait on this; set at shutdown
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.site = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "LocalSite":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes | str = b"", **kwargs) -> str:
        if isinstance(body, str):
            body = body.encode("utf-8")
        with self.lock:
            self.routes[path] = Route(body=body, **kwargs)
        return self.url(path)

    def requests_to(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]


def hang(handler: Handler) -> None:
    """A server that accepts the request and never answers (until the site stops)."""
    handler.server.site.release.wait(60)


def redirect_to(location: str, status: int = 301) -> Callable[[Handler], None]:
    def handle(handler: Handler) -> None:
        handler.send_bytes(status, b"", {"location": location})

    return handle
