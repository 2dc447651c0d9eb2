"""OPML subscription lists in and out: what feed readers export and import (http://opml.org/spec2.opml).

Reading: every `<outline>` with an `xmlUrl` is a feed, however deeply it is nested; outlines without one are
folders, and their titles become the feed's `folder` ("News/Korea"). A feed's name is its `title`, else its
`text` (OPML 2.0 makes `text` the required one; readers disagree on which they fill), else the URL's host.
Writing: OPML 2.0 with one folder outline per distinct `folder`, so a nested list read in comes back out
nested.

An OPML file is a user's own file, but it may come from anywhere: documents that declare entities are refused
before expat sees them (the billion-laughs family), as parse.py does for feeds.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from .errors import ParseError

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)
_HTTP = re.compile(r"(?i)^https?://[^/\s]+")


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    name: str
    url: str
    folder: str = ""  # folder titles from the outermost in, joined by "/"; "" at the top level
    html_url: str = ""  # the site's own address (`htmlUrl`), when the list has it


def read_opml(data: bytes) -> tuple[OpmlFeed, ...]:
    """Every feed outline of an OPML document, in document order. Raises ParseError on anything but OPML."""
    if _ENTITY_DECL.search(data):
        raise ParseError("refused: the OPML document declares XML entities")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ParseError(f"not an OPML file: {e}") from e
    if _local(root.tag) != "opml":
        raise ParseError(f"not an OPML file: the root element is <{_local(root.tag)}>, not <opml>")
    body = next((child for child in root if _local(child.tag) == "body"), None)
    if body is None:
        raise ParseError("not an OPML file: it has no <body>")
    feeds: list[OpmlFeed] = []
    _walk(body, (), feeds)
    return tuple(feeds)


def _walk(element: ET.Element, folders: tuple[str, ...], out: list[OpmlFeed]) -> None:
    for outline in element:
        if _local(outline.tag) != "outline":
            continue
        attrs = {_local(k).lower(): (v or "").strip() for k, v in outline.attrib.items()}
        label = attrs.get("title") or attrs.get("text") or ""
        url = attrs.get("xmlurl", "")
        if url:
            # An outline with a feed URL is a subscription even if (against the spec) it has children.
            if _HTTP.match(url):
                out.append(
                    OpmlFeed(label or (urlsplit(url).hostname or url), url, "/".join(folders), attrs.get("htmlurl", ""))
                )
            _walk(outline, folders, out)
        else:
            _walk(outline, folders + ((label or "untitled").replace("/", "-"),), out)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def write_opml(feeds: Iterable[OpmlFeed], *, title: str, now: datetime) -> str:
    """An OPML 2.0 document: the feeds in the order given, each inside the (nested) folder outline of its path."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now)  # OPML 2.0: RFC 822 dates
    ET.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {"": body}

    def folder(path: str) -> ET.Element:
        if path not in folders:
            parent, _, name = path.rpartition("/")
            folders[path] = ET.SubElement(folder(parent), "outline", text=name, title=name)
        return folders[path]

    for feed in feeds:
        attrs = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if feed.html_url:
            attrs["htmlUrl"] = feed.html_url
        ET.SubElement(folder(feed.folder.strip("/")), "outline", attrs)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
