"""What stands between watcher and an article: bot challenges, cookie-consent walls and paywalls, by their signs.

A page behind one of these is not the article, and its text must not be taken for it: a challenge page says "Just a
moment...", a consent wall lists cookie purposes, a paywall shows a teaser. Each is recognised by signs written out
here (and in docs/reliability.md, "Walls"), recorded as the page's outcome (`blocked`, `consent`, `paywall`), and
the feed's own text is used instead. Pure functions over bytes already capped by the fetcher; each sign is a plain
substring or a bounded regex, so a hostile page costs linear time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .models import Wall

CHALLENGE_STATUSES = frozenset({403, 429, 503})
SCAN_BYTES = 512 * 1024  # signs sit in the head or a small wall page; a huge page is not scanned to its end

# Bot-protection challenge pages (answered with 403/429/503): Cloudflare, then other common services.
CHALLENGE_BODY_SIGNS: tuple[tuple[bytes, str], ...] = (
    (b"/cdn-cgi/challenge-platform/", "Cloudflare challenge script"),
    (b"cf-chl-", "Cloudflare challenge form"),
    (b"<title>just a moment...</title>", "Cloudflare 'Just a moment...' page"),
    (b"attention required! | cloudflare", "Cloudflare block page"),
    (b"_incapsula_resource", "Imperva/Incapsula challenge"),
    (b"captcha-delivery.com", "DataDome captcha"),
    (b"px-captcha", "PerimeterX/HUMAN captcha"),
    (b"checking your browser before accessing", "browser check page"),
)

# Cookie-consent walls: a page that asks for consent before showing anything (only a wall when the page has no
# article text of its own: many articles carry a consent banner's script beside their text).
CONSENT_SIGNS: tuple[tuple[bytes, str], ...] = (
    (b"consent.google.", "Google consent page"),
    (b"consent.yahoo.com", "Yahoo consent page"),
    (b"onetrust-consent-sdk", "OneTrust consent dialog"),
    (b"didomi-host", "Didomi consent dialog"),
    (b"qc-cmp2", "Quantcast consent dialog"),
    (b"sp_message_container", "Sourcepoint consent dialog"),
    (b"before you continue", "'Before you continue' consent text"),
    (b"we value your privacy", "'We value your privacy' consent text"),
    (b"accept all cookies", "'Accept all cookies' button"),
)
CONSENT_MAX_TEXT = 1000  # a consent wall's own words; an article behind a banner has more text than this

# Paywalls. schema.org's isAccessibleForFree=false is what publishers declare for search engines (Google's
# "paywalled content" structured data): a sure sign whatever the page shows. The others are paywall markup and
# words, signs only when the page's text is short (a teaser).
# The pattern starts with its literal, so re scans for it at C speed: an optional quote before it (it matches the
# same pages) made the search try every byte, ~2 ms of a 165 KB page.
_NOT_FREE = re.compile(rb"""isaccessibleforfree["']?\s*[:=]\s*["']?false""")
PAYWALL_SIGNS: tuple[tuple[bytes, str], ...] = (
    (b'class="paywall', "paywall markup"),
    (b'id="paywall', "paywall markup"),
    (b"tp-modal", "Piano paywall"),
    (b"subscribe to continue reading", "'Subscribe to continue reading'"),
    (b"this article is for subscribers", "'for subscribers' notice"),
    (b"already a subscriber?", "'Already a subscriber?' prompt"),
)
PAYWALL_MAX_TEXT = 1500  # a teaser; a full article with a subscribe box under it is longer


def challenge_sign(status: int, headers: Mapping[str, str], body: bytes | None) -> str | None:
    """Why a 403/429/503 answer is a bot challenge (the sign found), or None for an ordinary error."""
    if status not in CHALLENGE_STATUSES:
        return None
    mitigated = headers.get("cf-mitigated", "").strip().lower()
    if mitigated == "challenge":
        return "cf-mitigated: challenge"
    sample = (body or b"")[:SCAN_BYTES].lower()
    return next((why for sign, why in CHALLENGE_BODY_SIGNS if sign in sample), None)


def page_wall(content: bytes, text: str) -> tuple[Wall, str] | None:
    """(wall, sign) when an article page (a 2xx) is a consent wall or a paywall; `text` is what extraction found."""
    sample = content[:SCAN_BYTES].lower()
    if _NOT_FREE.search(sample):
        return "paywall", "isAccessibleForFree: false"
    if len(text) < CONSENT_MAX_TEXT:
        for sign, why in CONSENT_SIGNS:
            if sign in sample:
                return "consent", why
    if len(text) < PAYWALL_MAX_TEXT:
        for sign, why in PAYWALL_SIGNS:
            if sign in sample:
                return "paywall", why
    # A bot challenge served with 200 (some services do): the same signs as on a 403.
    if len(text) < CONSENT_MAX_TEXT:
        for sign, why in CHALLENGE_BODY_SIGNS:
            if sign in sample:
                return "blocked", why
    return None
