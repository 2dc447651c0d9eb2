"""Text and URL hygiene shared by the stages: canonical URLs, safe links, HTML to plain text, field cleaning.

Pure functions on strings, standard library only; parse.py uses them on feed fields, and the store, pipeline
and alerts may use them on anything that came from a stranger.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import quote, unquote, urljoin, urlsplit

# --- links ---------------------------------------------------------------------------------------------------


def safe_link(link: str | None, feed_url: str) -> str | None:
    """The entry's link resolved against the feed URL (relative links happen), or None unless http(s).

    feedparser passes javascript:, data: and file: links through unchanged (docs/reliability.md): they stop here.
    """
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        resolved = urljoin(feed_url, clean_text(link).strip())
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    return resolved if canonical_url(resolved) else None  # so `link` and `url` are None together


# Parameters that say how a reader arrived, not what the page is. Dropping them lets the same article reached
# from two feeds (or two campaigns) share one canonical URL. Compared case-insensitively.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "twclid", "ttclid",
        "mc_cid", "mc_eid", "_ga", "_gl", "ref_src", "cmpid", "at_medium", "at_campaign",
    }
)  # fmt: skip
_TRACKING_PREFIXES = ("utm_",)
_HOST = re.compile(r"[a-z0-9_.-]+")  # after IDNA; underscores are not RFC 1123 but real hosts use them
# RFC 3986 characters that may stay unescaped in a path or query; `%` stays so existing escapes are kept as is.
_URI_SAFE = "/?:@!$&'()*+,;=-._~%"


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """The identity of an article across feeds: same page, same string. None unless an http(s) URL.

    Scheme and host are case-insensitive (RFC 3986 6.2.2.1), default ports say nothing (6.2.3), the fragment
    never reaches the server, userinfo is not part of the page's identity, and IDNA hosts compare as punycode.
    Non-ASCII in path and query is percent-encoded as UTF-8 (RFC 3987 3.1) so an IRI and its URI agree.
    Other parameters keep their order and spelling: some sites route on them.
    """
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(urljoin(base, url.strip()) if base else url.strip())
        port = parts.port
        host = parts.hostname  # lower-cased, without userinfo, port or IPv6 brackets
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return None
    host = host.rstrip(".")  # "example.com." names the same host
    try:
        host = host.encode("idna").decode("ascii").lower() if not host.isascii() else host
    except UnicodeError:
        return None  # not a valid international host name
    if ":" in host:
        host = f"[{host}]"
    elif not _HOST.fullmatch(host):
        return None  # spaces, quotes, percent signs: no DNS name looks like that
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    path = quote(parts.path, safe=_URI_SAFE) or "/"
    kept = [p for p in parts.query.split("&") if p and not _is_tracking(p)]
    query = "&".join(quote(p, safe=_URI_SAFE) for p in kept)
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def _is_tracking(pair: str) -> bool:
    name = unquote(pair.split("=", 1)[0]).lower()
    return name in _TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)


# --- text ----------------------------------------------------------------------------------------------------

# C0 and C1 controls and DEL, except tab and newline; carriage returns become newlines first.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Lone surrogates: from &#xD800; through the loose parser, or "\ud800" in JSON. They cannot be UTF-8 encoded.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")


def clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def _collapse(text: str, one_line: bool) -> str:
    if one_line:
        return " ".join(text.split())
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def field_text(value: str, content_type: str, limit: int, *, one_line: bool = False) -> str:
    """Plain text from a feed field of the given type, bounded to `limit` characters."""
    if not isinstance(value, str) or not value:
        return ""
    if "html" in content_type and ("<" in value or "&" in value):  # text/html, application/xhtml+xml
        text = _html_to_text(value, limit)
    else:
        # Plain fields still arrive with entities escaped twice ("AT&amp;amp;T") often enough to unescape.
        text = html.unescape(value[: limit * 4])
    return _collapse(clean_text(text), one_line)[:limit].rstrip()


def html_to_text(html_text: str) -> str:
    """Readable plain text from an HTML fragment: tags dropped, entities decoded, blocks on their own lines."""
    return _collapse(clean_text(_html_to_text(html_text, None)), False)


class _TextCollector(HTMLParser):
    # Elements whose content is code or markup, never prose.
    SKIP = frozenset({"script", "style", "template", "noscript", "svg", "math", "iframe", "object"})
    PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl"})
    LINE = frozenset(
        {"br", "div", "li", "tr", "dt", "dd", "hr", "section", "article", "header", "footer", "aside", "nav",
         "main", "figure", "figcaption", "address", "details", "summary", "caption", "form", "fieldset", "title"}
    )  # fmt: skip
    CELL = frozenset({"td", "th"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.skipping = 0
        self.pending = ""  # the widest break asked for since the last text: "", " ", "\n" or "\n\n"

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        self._boundary(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self._boundary(tag)  # <br/>, <hr/>; a self-closed <script/> opens nothing

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        self._boundary(tag)

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.pending and self.parts:
            self.parts.append(self.pending)
        self.pending = ""
        self.parts.append(data)
        self.size += len(data)

    def _boundary(self, tag: str) -> None:
        # </li><li> is one line break, not two: a boundary only widens the break before the next text.
        brk = "\n\n" if tag in self.PARAGRAPH else "\n" if tag in self.LINE else " " if tag in self.CELL else ""
        if _BREAK_RANK[brk] > _BREAK_RANK[self.pending]:
            self.pending = brk


_BREAK_RANK = {"": 0, " ": 1, "\n": 2, "\n\n": 3}
_TAG = re.compile(r"<[^>]*>?")
_CHUNK = 65_536


def _html_to_text(html_text: str, limit: int | None) -> str:
    """Feed the parser in chunks and stop once `limit` characters of text are in hand: a 1 MB title costs
    no more than it must."""
    collector = _TextCollector()
    try:
        for start in range(0, len(html_text), _CHUNK):
            collector.feed(html_text[start : start + _CHUNK])
            if limit is not None and collector.size > limit * 2:
                break
        collector.close()
        return "".join(collector.parts)
    except Exception:  # html.parser may raise on odd markup (e.g. AssertionError on "<![bogus["): strip crudely
        return html.unescape(_TAG.sub(" ", html_text if limit is None else html_text[: limit * 4]))


# Query parameters that carry credentials in real feed URLs (private feeds, paid APIs, signed links).
_SECRET_PARAM = re.compile(
    r"(?i)^(?:.*[_-])?(?:token|key|apikey|secret|password|passwd|pass|pwd|auth|sig|signature|session|sid|hash)$"
)


def hide_credentials(url: str) -> str:
    """The URL without a user:password part and with secret-looking query values masked, for storing and showing.

    Unlike a log redaction, other query parameters stay readable, so two feeds that differ only in a `cat=`
    parameter keep different stored URLs.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/?#]*@", "//", url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}=***" if sep and _SECRET_PARAM.match(unquote(name)) else f"{name}{sep}{value}"
        for name, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return parts._replace(netloc=netloc, query=query).geturl()
