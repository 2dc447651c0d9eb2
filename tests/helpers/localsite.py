"""A real HTTP server on 127.0.0.1 for tests: routes that serve bytes, honour conditional GET, or misbehave.

It runs in a thread of the test process (ThreadingHTTPServer), so tests talk to it over real sockets with the
real httpx client, and can both script its answers and read back what it received.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/xml"
    etag: bool = True  # answer If-None-Match / If-Modified-Since with 304
    last_modified: str | None = "Wed, 25 Nov 2026 10:00:00 GMT"
    gzip: bool = False
    handler: Callable[[Handler], None] | None = None  # full control, for misbehaving servers


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


class Handler(BaseHTTPRequestHandler):
    server: _Server
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
    request_queue_size = 128  # listen backlog; socketserver's default of 5 drops connects when tests fire dozens
    site: LocalSite

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up early (timeouts, caps) are what many tests do on purpose

    def process_request(self, request, client_address) -> None:
        with self.site.lock:
            self.site.connections += 1  # accepted TCP connections, request or not (the guard tests need this)
        super().process_request(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class LocalSite:
    """`site.add("/feed.xml", body)`, then fetch `site.url("/feed.xml")`; `site.requests` records every request."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        """`host` binds another loopback address (127.0.0.2, ::1); `tls` serves https with that context."""
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # hanging handlers wait on this; set at shutdown
        self.host = host
        self.scheme = "https" if tls else "http"
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, 0), Handler)
        if tls:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.site = self
        self.port = self._server.server_address[1]
        # A short poll interval: stop() (server.shutdown) waits up to one interval; the default 0.5 s made
        # every test using the `site` fixture half a second slower.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def start(self) -> LocalSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"

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


# --- misbehaving servers and probes (added for tests/test_fetch.py) -----------------------------------------


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Callable[[Handler], None]:
    """Answer exactly these status, headers and bytes (no etag, no last-modified added)."""

    def handle(handler: Handler) -> None:
        handler.send_bytes(status, body, dict(headers or {}))

    return handle


def stream_forever(
    *, chunked: bool = True, content_length: int | None = None, block: int = 16384
) -> Callable[[Handler], None]:
    """A body that never ends: chunked, or delimited by close (optionally under a lying Content-Length)."""

    def handle(handler: Handler) -> None:
        site = handler.server.site
        handler.send_response(200)
        handler.send_header("content-type", "application/xml")
        if chunked:
            handler.send_header("transfer-encoding", "chunked")
        elif content_length is not None:
            handler.send_header("content-length", str(content_length))
        else:
            handler.send_header("connection", "close")
        handler.end_headers()
        data = b"<x>" + b"a" * (block - 3)
        try:
            while not site.release.is_set():
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                handler.wfile.flush()
        except OSError:  # the client hung up: that is the point
            pass
        handler.close_connection = True

    return handle


def drip(body: bytes, interval: float) -> Callable[[Handler], None]:
    """Send the headers, then one byte of `body` every `interval` seconds: each read is quick, the whole is not."""

    def handle(handler: Handler) -> None:
        site = handler.server.site
        handler.send_response(200)
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        try:
            for i in range(len(body)):
                if site.release.wait(interval):
                    break
                handler.wfile.write(body[i : i + 1])
                handler.wfile.flush()
        except OSError:
            pass
        handler.close_connection = True

    return handle


class InFlight:
    """A handler that holds each request for `hold` seconds and records how many were in flight at once."""

    def __init__(self, hold: float = 0.05, body: bytes = b"<rss/>") -> None:
        self.hold, self.body = hold, body
        self.lock = threading.Lock()
        self.now = self.peak = self.total = 0

    def __call__(self, handler: Handler) -> None:
        with self.lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
        handler.server.site.release.wait(self.hold)  # the server's own pace, not a test waiting
        with self.lock:
            self.now -= 1
        handler.send_bytes(200, self.body, {"content-type": "application/xml"})


def make_tls_files(directory: Path, hostname: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `hostname` (DNS name only, no IP): (ca, cert, key).

    Uses the openssl command line tool; callers skip their test when it is missing.
    """
    ca_key, ca, key, csr, cert, ext = (
        directory / n for n in ("ca.key", "ca.pem", "key.pem", "srv.csr", "cert.pem", "ext.cnf")
    )

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=watcher test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={hostname}")
    ext.write_text(f"subjectAltName=DNS:{hostname}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return ca, cert, key
