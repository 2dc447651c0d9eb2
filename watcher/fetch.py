"""Fetching feeds and pages: the only module that imports httpx.

One `Fetcher` owns the HTTP clients and every limit that protects watcher from the servers it polls
(docs/reliability.md): a total deadline per request, caps on decoded bytes, manual redirects with a scheme check
at every hop, and the address guard (guard.py) under every connection. Failures leave as `FetchError`
with a short `kind`; messages never carry a URL's userinfo or query values (`redact_url`).

Proxies: with `use_env_proxy`, httpx sends requests to the proxy named by HTTP(S)_PROXY, which resolves
names itself; only the URL-level checks (scheme, localhost names, literal addresses) apply then.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import math
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from .body import BodyDecoder, coding_of, size_text
from .config import FetchSettings
from .errors import FetchError
from .guard import GuardedBackend, check_host, install_guard, parse_networks
from .host_limits import HostLimits
from .models import FeedState, FetchedFeed, FetchedPage, FetchFailure, NotModified
from .schedules import MAX_SERVER_HINT as MAX_HINT
from .schedules import parse_retry_after
from .text import redact_url
from .unreachable import Remembered
from .walls import CHALLENGE_STATUSES, challenge_sign

# httpx logs every request line, full URL and tokens included, at INFO (docs/reliability.md, "What it may write").
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)
log = logging.getLogger(__name__)

_MAX_PER_CLIENT = 20  # one httpx client slows down above ~20 connections (docs/architecture.md, "Performance facts")
ERROR_BODY_CAP = 64 * 1024  # of a 403/429/503 answer: enough for a challenge page's signs
_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}
# We decode ourselves (body.py), so we only offer what we can decode with a bounded output.
# No "br": the brotli bindings offer no output limit per call, so a brotli bomb could not be stopped early.
_ACCEPT_ENCODING = "gzip, deflate"
_FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
_PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
_LOCATION = "x-watcher-location"


def parse_max_age(cache_control: str | None) -> timedelta | None:
    """Cache-Control max-age (seconds) as a delay, clamped to a day; None when absent or garbled."""
    for directive in (cache_control or "").split(","):
        name, _, arg = directive.strip().partition("=")
        arg = arg.strip().strip('"')
        if name.strip().lower() == "max-age" and arg.isascii() and arg.isdigit():
            return min(timedelta(seconds=min(int(arg), 10**9)), MAX_HINT)
    return None


def cache_hint(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """The longer of Retry-After and max-age on a 200/304: the earliest the server wants to be asked again."""
    hints = [
        h
        for h in (parse_retry_after(headers.get("retry-after"), now), parse_max_age(headers.get("cache-control")))
        if h is not None
    ]
    return max(hints) if hints else None


def _server_now(headers: Mapping[str, str]) -> datetime:
    """The server's clock (its Date header) when it has one: a Retry-After date is relative to it."""
    try:
        when = email.utils.parsedate_to_datetime(headers.get("date", ""))
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return datetime.now(UTC)


class Fetcher:
    """Fetches feeds (conditional GET) and article pages under the limits of `FetchSettings`.

    `async with Fetcher(settings) as fetcher: result = await fetcher.fetch_feed(state)`.
    """

    def __init__(self, settings: FetchSettings) -> None:
        self._settings = settings
        self._allow = parse_networks(settings.allow_networks)
        # Several clients when more than ~20 requests may be in flight: each stays in its fast range.
        count = max(1, math.ceil(settings.concurrency / _MAX_PER_CLIENT))
        per_client = math.ceil(settings.concurrency / count)
        # One TLS context for all clients: loading the CA bundle costs ~40 ms each time.
        tls = httpx.create_ssl_context(trust_env=settings.use_env_proxy)
        # One guard under every client, with one memory: names and hosts that failed a moment ago fail their next
        # pages at once (unreachable.py).
        self._backend = GuardedBackend(self._allow, memory=Remembered())
        self._clients = [self._client(per_client, tls) for _ in range(count)]
        self._in_flight = [0] * count
        self._all = asyncio.Semaphore(settings.concurrency)
        # Requests in flight to one host: the per-host limit, or this worker's share of it (share_hosts).
        self._host_limits = HostLimits(settings.per_host)
        self._hosts = self._host_limits.hosts

    def _client(self, connections: int, tls: ssl.SSLContext) -> httpx.AsyncClient:
        s = self._settings
        client = _CookielessClient(
            verify=tls,
            headers={"user-agent": s.user_agent, "accept-encoding": _ACCEPT_ENCODING},
            timeout=httpx.Timeout(
                connect=s.connect_timeout.total_seconds(),
                read=s.read_timeout.total_seconds(),
                write=s.read_timeout.total_seconds(),
                pool=s.timeout.total_seconds(),
            ),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            follow_redirects=False,  # followed by hand: each hop is checked (scheme, guard, count)
            event_hooks={"response": [_hide_location]},
            trust_env=s.use_env_proxy,
        )
        install_guard(client, self._backend)
        return client

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def fetch_feed(self, state: FeedState) -> FetchedFeed | NotModified:
        """GET a feed, conditionally when `state` has validators. Raises FetchError."""
        headers = {"accept": _FEED_ACCEPT}
        if state.etag:
            headers["if-none-match"] = state.etag
        if state.last_modified:
            headers["if-modified-since"] = state.last_modified
        url, response, body, permanent = await self._get(
            state.url, headers, self._settings.max_feed_bytes, conditional=True
        )
        hint = cache_hint(response.headers, _server_now(response.headers))
        if response.status_code == 304:
            # RFC 9110 15.4.5: a 304 may omit validators; then the ones we sent are still the current ones.
            return NotModified(
                url=url,
                etag=response.headers.get("etag") or state.etag,
                last_modified=response.headers.get("last-modified") or state.last_modified,
                retry_after=hint,
                permanent_redirect=url if permanent else None,
            )
        # The body is decoded already: drop the headers that describe the encoded form, lest a parser decode twice.
        kept = {
            k: v
            for k, v in response.headers.items()
            if k not in ("content-encoding", "content-length", "transfer-encoding")
        }
        return FetchedFeed(
            url=url,
            content=body,
            headers=kept,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            permanent_redirect=url if permanent else None,
            retry_after=hint,
        )

    async def check_reachable(self, url: str) -> None:
        """Resolve and check the URL's host now, without taking a slot; fail at once for a host that failed a
        moment ago (unreachable.py). The pipeline calls it before a page takes one of the shared page slots, so a
        page whose name does not resolve never holds up another feed's pages. Raises FetchError."""
        if self._settings.use_env_proxy:
            return  # the proxy resolves names, not us
        target = self._prepare(url, hop=False)
        port = target.port or (443 if target.scheme == "https" else 80)
        with _translated(url, self._settings):
            await self._backend.check_reachable(target.host, port, self._settings.connect_timeout.total_seconds())

    async def fetch_page(self, url: str) -> FetchedPage:
        """GET an article page (capped at max_page_bytes). Raises FetchError."""
        cap = self._settings.max_page_bytes
        final, response, body, _ = await self._get(url, {"accept": _PAGE_ACCEPT}, cap, conditional=False, encoded=True)
        coding = coding_of(response.headers.get("content-encoding", ""), redact_url(final))
        return FetchedPage(
            url=final,
            content=body,
            content_type=response.headers.get("content-type", ""),
            content_encoding="" if coding == "identity" else coding,
            max_bytes=cap,
        )

    async def _get(
        self, url: str, headers: dict[str, str], cap: int, *, conditional: bool, encoded: bool = False
    ) -> tuple[str, httpx.Response, bytes, bool]:
        """Follow redirects by hand; return (final URL, last response, body, every hop was permanent).
        `encoded`: a 2xx body is returned as it arrived (gzip or deflate), for the worker to decode."""
        remaining = self._settings.timeout.total_seconds()  # the total deadline, spent only while a hop runs
        statuses: list[int] = []
        current = url
        for _ in range(self._settings.max_redirects + 1):
            target = self._prepare(current, hop=bool(statuses))
            response, body, elapsed = await self._exchange(current, target, headers, cap, remaining, encoded)
            remaining -= elapsed
            status = response.status_code
            if status in _REDIRECTS:
                location = response.headers.get(_LOCATION)
                if not location:
                    raise FetchError(
                        redact_url(current), f"HTTP {status} without a Location header", kind="http", status=status
                    )
                statuses.append(status)
                current = urljoin(str(target), location.strip())
                continue
            if 200 <= status < 300 or (status == 304 and conditional):
                final = str(target) if statuses else url
                return final, response, body or b"", bool(statuses) and all(s in _PERMANENT for s in statuses)
            raise _status_error(current, response, body)
        raise FetchError(redact_url(url), f"more than {self._settings.max_redirects} redirects", kind="redirects")

    def _prepare(self, url: str, *, hop: bool) -> httpx.URL:
        """Checks made on the URL itself, before any DNS or connection, at every hop."""
        where = "redirect to " if hop else ""
        try:
            parts = urlsplit(url)
        except ValueError as e:
            raise FetchError(redact_url(url), f"{where}an invalid URL ({e})", kind="url") from e
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            shown = f"{scheme}:" if scheme else "a relative URL"
            raise FetchError(redact_url(url), f"{where}{shown} refused: only http and https are fetched", kind="scheme")
        try:
            check_host(parts.hostname or "", self._allow)
            return httpx.URL(url)
        except FetchError as e:
            e.url = redact_url(url)
            raise
        except httpx.InvalidURL as e:  # httpx's message may quote the URL, secrets and all: not shown
            raise FetchError(redact_url(url), f"{where}an invalid URL", kind="url") from e

    async def _exchange(
        self, url: str, target: httpx.URL, headers: dict[str, str], cap: int, budget: float, encoded: bool
    ) -> tuple[httpx.Response, bytes | None, float]:
        """One request/response under the remaining deadline; the body is read for a 2xx (and a little of a
        403/429/503, to recognise a bot challenge)."""
        loop = asyncio.get_running_loop()
        async with self._slot(target.host) as client:
            started = loop.time()
            try:
                with _translated(url, self._settings):
                    async with asyncio.timeout(max(budget, 0)):
                        request = client.build_request("GET", target, headers=headers)
                        response = await client.send(request, stream=True)
                        try:
                            status = response.status_code
                            body: bytes | None = None
                            if 200 <= status < 300:
                                body = await _read_body(response, cap, url, encoded=encoded)
                            elif status in CHALLENGE_STATUSES:
                                body = await _error_body(response, url)  # a challenge page says what it is
                            if response.status_code == 304:
                                # A 304 has no body; reading its end lets the connection go back to the pool.
                                # Closed unread, httpcore drops it: 50 conditional GETs opened 40 connections.
                                await response.aread()
                        finally:
                            await response.aclose()
            finally:
                elapsed = loop.time() - started
        if log.isEnabledFor(logging.DEBUG):
            log.debug("GET %s -> %s in %.2f s", redact_url(url), response.status_code, elapsed)
        return response, body, elapsed

    @property
    def per_host(self) -> int:
        return self._host_limits.per_host

    async def share_hosts(self, workers: int) -> None:
        """Allow this worker its share of the per-host limit when `workers` live workers share it."""
        await self._host_limits.share(workers)

    @asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[httpx.AsyncClient]:
        """Wait for the host's slot, then a global one (in that order: no global slot idles behind a busy host)."""
        async with self._host_limits.slot(host), self._all:
            i = min(range(len(self._clients)), key=self._in_flight.__getitem__)  # least busy client
            self._in_flight[i] += 1
            try:
                yield self._clients[i]
            finally:
                self._in_flight[i] -= 1


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing. Left to itself httpx reads every response's Set-Cookie into the client's jar,
    wrapping request and response in urllib's classes to do it (~5% of a 304's CPU), even for a jar whose policy
    then refuses every cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


_NO_COOKIES = _NoCookies()


class _CookielessClient(httpx.AsyncClient):
    """No cookie travels with a feed or a page: cookies would be state, and could travel between sites."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise AttributeError("this client keeps no cookies")


async def _read_body(response: httpx.Response, cap: int, url: str, *, encoded: bool = False) -> bytes:
    length = response.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > cap:
        raise FetchError(
            redact_url(url), f"body of {size_text(int(length))} is over the {size_text(cap)} cap", kind="too-large"
        )
    coding = response.headers.get("content-encoding", "")
    if encoded and coding_of(coding, redact_url(url)) != "identity":
        # Kept as it arrived: the worker decodes it under the same cap (body.decoded_page).
        parts, size = [], 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > cap:
                raise FetchError(redact_url(url), f"body larger than {size_text(cap)}", kind="too-large")
            parts.append(chunk)
        return b"".join(parts)
    decoder = BodyDecoder(coding, cap, redact_url(url))
    async for chunk in response.aiter_raw():  # raw: httpx's own decoding has no output bound
        decoder.feed(chunk)
    return decoder.finish()


async def _error_body(response: httpx.Response, url: str) -> bytes | None:
    """The start of an error answer's body, for its signs; None when it cannot be read within a small cap."""
    try:
        return await _read_body(response, ERROR_BODY_CAP, url)
    except FetchError:
        return None


def _status_error(url: str, response: httpx.Response, body: bytes | None = None) -> FetchError:
    status = response.status_code
    sign = challenge_sign(status, {k.lower(): v for k, v in response.headers.items()}, body)
    if sign is not None:
        # Not a broken URL: bot protection wants a browser. Named, so its owner can set `extract = false`.
        return FetchError(
            redact_url(url), f"HTTP {status}: a bot challenge ({sign}), not the page", kind="challenge", status=status
        )
    try:
        phrase = http.HTTPStatus(status).phrase  # ours, not the server's: a reason phrase is free text
    except ValueError:
        phrase = ""
    retry_after = parse_retry_after(response.headers.get("retry-after"), _server_now(response.headers))
    kind: FetchFailure = "rate-limited" if status == 429 else "http"
    return FetchError(
        redact_url(url), f"HTTP {status} {phrase}".strip(), kind=kind, status=status, retry_after=retry_after
    )


@contextmanager
def _translated(url: str, settings: FetchSettings) -> Iterator[None]:
    """Foreign errors become FetchError here, with the cause kept and the URL redacted (only then: redacting
    every request's URL was ~1% of a 304's CPU)."""
    try:
        yield
    except FetchError as e:  # from the guard or the decoder: they know the host, not the URL
        e.url = redact_url(url)
        raise
    except (TimeoutError, httpx.TransportError, httpcore.NetworkError, httpx.InvalidURL) as e:
        raise _foreign_error(e, redact_url(url), settings) from e


def _foreign_error(e: Exception, shown: str, settings: FetchSettings) -> FetchError:
    if isinstance(e, TimeoutError):  # asyncio.timeout: the total deadline
        return FetchError(shown, f"no complete answer within {settings.timeout.total_seconds():g} s", kind="timeout")
    if isinstance(e, httpx.ConnectTimeout):
        return FetchError(shown, f"no connection within {settings.connect_timeout.total_seconds():g} s", kind="timeout")
    if isinstance(e, httpx.PoolTimeout):
        return FetchError(shown, "no free connection in time", kind="timeout")
    if isinstance(e, httpx.TimeoutException):
        return FetchError(shown, f"no data for {settings.read_timeout.total_seconds():g} s", kind="timeout")
    if isinstance(e, httpx.ConnectError):
        return FetchError(shown, f"cannot connect ({e or type(e).__name__})", kind="connect")
    if isinstance(e, httpx.RemoteProtocolError):
        return FetchError(shown, f"broken HTTP response ({e})", kind="protocol")
    if isinstance(e, httpx.InvalidURL):
        return FetchError(shown, "an invalid URL", kind="url")
    return FetchError(shown, f"connection failed ({e or type(e).__name__})", kind="connect")


async def _hide_location(response: httpx.Response) -> None:
    """Even with follow_redirects=False, httpx parses a redirect's Location to build `next_request`, and
    raises on `javascript:` or malformed ones before we can see the response. We follow redirects by hand
    (_get), so move the header out of httpx's sight."""
    if response.status_code in _REDIRECTS and "location" in response.headers:
        response.headers[_LOCATION] = response.headers["location"]
        del response.headers["location"]
