"""HTTP bodies decoded from gzip or deflate with a bound on what comes out (zlib only; no httpx here).

The fetcher decodes feeds as they stream in; an article page travels to its extraction worker as the bytes that
arrived and is decoded there (`decoded_page`), so the event loop's process neither inflates pages nor pickles
them at full size (docs/architecture.md, "Performance facts").
"""

from __future__ import annotations

import zlib

from .errors import FetchError
from .models import FetchedPage
from .text import redact_url

_PIECE = 64 * 1024  # most decoded bytes produced per zlib call: memory stays bounded whatever the ratio
UNSET_PAGE_CAP = 5 * 2**20  # a FetchedPage made without max_bytes (tools, tests): the default `max_page_mb`


def coding_of(content_encoding: str, url: str) -> str:
    """The body's one coding: "identity", "gzip" or "deflate". Raises FetchError (kind encoding) otherwise."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if len(codings) > 1:
        # Stacked codings multiply the ratio (3 KB of gzip-in-gzip -> 2.1 GB, docs/reliability.md): no feed needs them.
        raise FetchError(url, f"stacked Content-Encoding {content_encoding!r} refused", kind="encoding")
    coding = codings[0] if codings else "identity"
    if coding == "x-gzip":  # RFC 9110 8.4.1.3: an alias of gzip
        coding = "gzip"
    if coding not in ("identity", "gzip", "deflate"):
        raise FetchError(url, f"unsupported Content-Encoding {content_encoding!r}", kind="encoding")
    return coding


def size_text(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


class BodyDecoder:
    """Decodes a raw body incrementally and refuses it once the decoded size passes `cap`.

    httpx decodes a whole network chunk at once (a 204 KB gzip chunk becomes one 67 MB bytes object), so
    we read `aiter_raw()` and inflate with `max_length`: no call ever produces more than _PIECE bytes.
    """

    def __init__(self, content_encoding: str, cap: int, url: str) -> None:
        self._cap, self._url = cap, url
        self._coding = coding_of(content_encoding, url)
        self._inflater: zlib._Decompress | None = None
        self._head = b""  # deflate: the first bytes, until we can tell zlib-wrapped from raw
        self._parts: list[bytes] = []
        self._raw = self._size = 0
        self._members = 0  # complete compressed streams seen
        self._done = False  # the compressed stream ended; what follows is ignored

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._cap:
            raise FetchError(self._url, f"body larger than {size_text(self._cap)} (decoded)", kind="too-large")
        if data:
            self._parts.append(data)

    def feed(self, raw: bytes) -> None:
        self._raw += len(raw)
        if self._raw > self._cap:
            raise FetchError(self._url, f"body larger than {size_text(self._cap)}", kind="too-large")
        if self._coding == "identity":
            return self._keep(raw)
        if self._inflater is None:
            if self._coding == "gzip":
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                self._head += raw
                if len(self._head) < 2:
                    return
                raw, self._head = self._head, b""
                # RFC 9110 says deflate is zlib-wrapped, but servers send raw deflate too (httpx tolerates both).
                wrapped = raw[0] & 0x0F == 8 and (raw[0] << 8 | raw[1]) % 31 == 0
                self._inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        self._inflate(raw)

    def _inflate(self, data: bytes) -> None:
        while not self._done:
            assert self._inflater is not None
            limit = min(_PIECE, self._cap - self._size + 1)  # >= 1 always: max_length=0 would mean "no limit"
            try:
                out = self._inflater.decompress(data, limit)
            except zlib.error as e:
                if self._members:
                    self._done = True  # garbage after a complete gzip member (some servers pad): keep the member
                    return
                raise FetchError(self._url, f"corrupt {self._coding} body ({e})", kind="encoding") from e
            self._keep(out)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                self._members += 1
                data = self._inflater.unused_data
                if self._coding != "gzip":
                    self._done = True
                    return
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # RFC 1952: another member may follow
            elif not data and len(out) < limit:
                return  # input used up, nothing held back: wait for the next chunk
            # else: output was cut at the limit; go round again (with no new input) to drain what zlib holds

    def finish(self) -> bytes:
        if self._head:  # a deflate body of one byte: let zlib judge it
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            self._inflate(self._head)
        return b"".join(self._parts)


def decoded_page(page: FetchedPage) -> bytes:
    """The page's body decoded (in the worker), at most `page.max_bytes` of it. Raises FetchError (too-large or
    encoding), as the fetcher would have."""
    if not page.content_encoding:
        return page.content
    decoder = BodyDecoder(page.content_encoding, page.max_bytes or UNSET_PAGE_CAP, redact_url(page.url))
    decoder.feed(page.content)
    return decoder.finish()
