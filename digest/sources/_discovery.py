"""Finding a website's feeds: ``<link rel="alternate">`` in its page, else the paths sites commonly use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree

from ..collect.fetch import FetchResult
from ._input import _as_url

# Where sites commonly serve their feed, tried when a page names none with <link rel="alternate">.
COMMON_PATHS = ("/feed", "/rss", "/feed.xml", "/atom.xml", "/index.xml", "/rss.xml", "/feed.json")
# <link type> values that announce a feed, and how to call them.
FEED_TYPES = {
    "application/rss+xml": "RSS",
    "application/rdf+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/x-atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
}
PAGE_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/html;q=0.8, */*;q=0.7"
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A feed a page offers: its URL, title (may be empty), type (RSS, Atom, JSON Feed, feed) and
    how it was found (``link``: a ``<link rel="alternate">``, ``path``: a common path that answered)."""

    url: str
    title: str = ""
    type: str = "feed"
    via: str = "link"

    def describe(self) -> str:
        title = f" {self.title!r}" if self.title else ""
        return f"{self.type}{title} <{self.url}>"


def feed_links(body: bytes, url: str, content_type: str = "") -> list[Candidate]:
    """The feeds a web page announces with ``<link rel="alternate" type=...>`` (RSS, Atom, JSON
    Feed), in document order, hrefs resolved against ``<base href>`` or the page's URL. No I/O."""
    charset = re.search(r"charset=([\w.:-]+)", content_type, re.IGNORECASE)
    try:
        parser = lxml.html.HTMLParser(encoding=charset.group(1) if charset else None, no_network=True)
    except LookupError:
        parser = lxml.html.HTMLParser(no_network=True)
    try:
        document = lxml.html.document_fromstring(body, parser=parser)
    except (etree.ParserError, ValueError, LookupError):
        return []
    base = url
    for element in document.iter("base"):
        if element.get("href", "").strip():
            base = urljoin(url, element.get("href", "").strip())
            break
    found: dict[str, Candidate] = {}
    for link in document.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = FEED_TYPES.get((link.get("type") or "").split(";")[0].strip().lower())
        href = (link.get("href") or "").strip()
        if "alternate" not in rel or not kind or not href:
            continue
        target = _as_url(urljoin(base, href))
        if target and target not in found:
            title = " ".join((link.get("title") or "").split())
            found[target] = Candidate(target, title, kind, "link")
    return list(found.values())


def _common_urls(page: str) -> list[str]:
    """The common feed paths at the site's root and, for a page below it, under the page too."""
    urls = [urljoin(page, path) for path in COMMON_PATHS]
    parts = urlsplit(page)
    if parts.path.strip("/"):
        folder = page.split("?")[0].split("#")[0].rstrip("/") + "/"
        urls += [urljoin(folder, path.lstrip("/")) for path in COMMON_PATHS]
    return list(dict.fromkeys(urls))


def _looks_like_html(result: FetchResult) -> bool:
    if "html" in result.content_type.lower():
        return True
    head = result.body[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head
