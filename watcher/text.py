"""Text and URL hygiene shared by the stages: canonical URLs, safe links, text cleaning.

Pure functions on strings, standard library only; parse.py uses them on feed fields (HTML fields go through
html_text.py first), and the store, pipeline and alerts may use them on anything that came from a stranger.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

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

# C0 and C1 controls and DEL, except tab and newline (carriage returns become newlines first), dropped; and lone
# surrogates (from &#xD800; through the loose parser, or "\ud800" in JSON: they cannot be UTF-8 encoded), replaced.
# One pattern: the text is scanned once.
_UNWANTED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_BLANK_LINES = re.compile(r"\n{3,}")  # lines are stripped first: blank ones are empty


def clean_text(text: str) -> str:
    """Line breaks as "\\n", controls (but tab and newline) dropped, lone surrogates as U+FFFD."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNWANTED.sub(_replacement, text)


def _replacement(unwanted: re.Match[str]) -> str:
    return "\ufffd" if unwanted.group() >= "\ud800" else ""


def collapse_spaces(text: str, one_line: bool) -> str:
    """Runs of spaces as one; with `one_line` newlines too, else at most one blank line between paragraphs.

    str.split() does the work: it splits on the same whitespace as the regex `\\s` at C speed, where a regex
    for "whitespace but newline" tries a match at every character (twice the time on real article text)."""
    if one_line:
        return " ".join(text.split())
    lines = "\n".join([" ".join(line.split()) for line in text.split("\n")])
    return _BLANK_LINES.sub("\n\n", lines).strip()


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


def redact_url(url: str) -> str:
    """A URL fit for logs and messages: no user:password, no query values, no fragment."""
    try:
        parts = urlsplit(str(url))
        parts.port  # noqa: B018 - raises ValueError on a malformed port, like the other accessors
    except ValueError:
        return re.sub(r"//[^/?#]*@", "//", str(url)).split("?")[0].split("#")[0]
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{item.partition('=')[0]}=***" if "=" in item else "***" for item in parts.query.split("&") if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
