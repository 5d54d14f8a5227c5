"""OPML 1.0/2.0 subscription lists: read what feed readers export, write what they import.

Reading copes with the exports of Feedly, Inoreader, NetNewsWire, Miniflux and FreshRSS: folders
nested to any depth, ``xmlUrl`` in any letter case (``xmlurl`` in OPML 1.0 files), titles in
``title`` or ``text`` or missing, ``feed://`` URLs, duplicates (kept, for the caller to skip).
The XML is parsed as a stream (lxml's iterparse, each folder dropped once read) without resolving
entities or touching the network; a file over `MAX_BYTES` or not well-formed is refused with its
name and line, before anything is done with it.

No I/O beyond the file read or written.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from lxml import etree

from .errors import OpmlError
from .files import replace_atomically

__all__ = ["OpmlDocument", "OpmlError", "OpmlFeed", "OpmlGroup", "parse_opml", "read_opml", "render_opml", "write_opml"]

MAX_BYTES = 20_000_000  # a subscription list, not a data dump


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One subscription: its feed URL, title (may be empty), home page, the folders it sits in
    (outermost first) and the line it was written on."""

    url: str
    title: str = ""
    html_url: str = ""
    folders: tuple[str, ...] = ()
    line: int = 0


@dataclass(slots=True)
class OpmlDocument:
    """A parsed OPML file: its title, the feeds in document order (duplicates included) and the
    outlines that look like subscriptions but could not be used, as (line, reason)."""

    title: str = ""
    feeds: list[OpmlFeed] = field(default_factory=list)
    ignored: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OpmlGroup:
    """A folder of feeds to write: its name and the feeds in it."""

    name: str
    feeds: Sequence[OpmlFeed]


def read_opml(path: str | os.PathLike[str]) -> OpmlDocument:
    """Read and parse an OPML file as a stream (memory follows the feeds, not the file); raise
    `OpmlError` naming the file (and line) when it cannot be used, or is over `MAX_BYTES`."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return _parse(_Capped(handle, MAX_BYTES, str(path)), str(path))
    except FileNotFoundError:
        raise OpmlError(f"{path}: not found") from None
    except OSError as exc:
        raise OpmlError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def parse_opml(data: bytes, name: str = "<opml>") -> OpmlDocument:
    """Parse OPML bytes (``name`` is used in messages); raise `OpmlError` with ``name:line: problem``."""
    if len(data) > MAX_BYTES:
        raise _too_large(name)
    return _parse(io.BytesIO(data), name)


def _parse(source: io.IOBase, name: str) -> OpmlDocument:
    """Walk the outlines as the parser meets them, dropping each once read: a subscription list of
    100,000 feeds is read in one pass with the memory of its feeds. Entities are never resolved."""
    events = etree.iterparse(
        source,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    document = OpmlDocument()
    path: list[str] = []  # local names of the open elements, the root first
    folders: list[tuple[str, bool]] = []  # per open <outline>: its title, and whether it is a folder
    root_line, body_seen = 1, False
    try:
        for event, element in events:
            tag = etree.QName(element).localname.lower() if isinstance(element.tag, str) else ""
            if event == "start":
                if not path:
                    root_line = _line(element)
                    if tag != "opml":
                        raise OpmlError(
                            f"{name}:{root_line}: not an OPML file (the root element is <{tag or 'none'}>, not <opml>)"
                        )
                path.append(tag)
                if tag == "body" and len(path) == 2:
                    body_seen = True
                elif tag == "outline" and len(path) > 2 and path[1] == "body" and all(t == "outline" for t in path[2:]):
                    folders.append(_outline(element, tuple(t for t, folder in folders if folder), document))
                continue
            path.pop()
            if tag == "title" and path == ["opml", "head"] and not document.title:
                document.title = _text(element)
            if tag == "outline" and folders and len(path) >= 2 and path[1] == "body":
                folders.pop()
            if tag == "outline" or len(path) == 2:  # read: nothing of it, or of those before it, is needed again
                element.clear(keep_tail=False)
                while element.getprevious() is not None:
                    del element.getparent()[0]
    except etree.XMLSyntaxError as exc:
        message = re.sub(r",? line \d+, column \d+$", "", str(exc.msg or exc)).strip()
        raise OpmlError(f"{name}:{exc.lineno or 1}: not well-formed XML: {message}") from None
    if not body_seen:
        raise OpmlError(f"{name}:{root_line}: OPML without a <body>: no subscriptions in it")
    return document


class _Capped(io.RawIOBase):
    """A file read through a size cap: past ``limit`` bytes, `OpmlError` (nothing more is read)."""

    def __init__(self, handle: BinaryIO, limit: int, name: str) -> None:
        self.handle, self.limit, self.name, self.read_so_far = handle, limit, name, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(min(size if size >= 0 else 1 << 16, 1 << 16))
        self.read_so_far += len(chunk)
        if self.read_so_far > self.limit:
            raise _too_large(self.name)
        return chunk


def _too_large(name: str) -> OpmlError:
    return OpmlError(f"{name}: larger than {MAX_BYTES // 1_000_000} MB; not a subscription list (split it)")


def render_opml(groups: Sequence[OpmlGroup], *, title: str, now: datetime) -> bytes:
    """An OPML 2.0 document (UTF-8 bytes) with one folder outline per non-empty group."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now)
    etree.SubElement(head, "docs").text = "https://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    for group in groups:
        if not group.feeds:
            continue
        folder = etree.SubElement(body, "outline", text=group.name, title=group.name)
        for feed in group.feeds:
            label = feed.title or feed.url
            attributes = {"type": "rss", "text": label, "title": label, "xmlUrl": feed.url}
            if feed.html_url:
                attributes["htmlUrl"] = feed.html_url
            etree.SubElement(folder, "outline", attributes)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def write_opml(path: str | os.PathLike[str], groups: Sequence[OpmlGroup], *, title: str, now: datetime) -> int:
    """Write an OPML 2.0 file atomically (a reader never sees half of it); return how many feeds."""
    path = Path(path)
    data = render_opml(groups, title=title, now=now)
    try:
        replace_atomically(path, data)
    except OSError as exc:
        raise OpmlError(f"{path}: cannot be written: {exc.strerror or exc}") from None
    return sum(len(group.feeds) for group in groups)


def _outline(outline: etree._Element, folders: tuple[str, ...], document: OpmlDocument) -> tuple[str, bool]:
    """Record one ``<outline>`` (a feed, or why it cannot be used); return its title and whether the
    outlines inside it are in its folder (an outline with a feed URL is not a folder)."""
    attributes = {etree.QName(k).localname.lower(): (v or "").strip() for k, v in outline.attrib.items()}
    title = " ".join((attributes.get("title") or attributes.get("text") or "").split())
    kind = attributes.get("type", "").lower()
    url = attributes.get("xmlurl") or (attributes.get("url", "") if kind in ("rss", "atom") else "")
    line = _line(outline)
    if url:
        feed_url = _feed_url(url)
        if feed_url:
            document.feeds.append(OpmlFeed(feed_url, title, attributes.get("htmlurl", ""), folders, line))
        else:
            document.ignored.append((line, f"{url!r} is not an http(s) feed URL"))
    elif kind in ("rss", "atom"):
        document.ignored.append((line, f"outline {title!r} has type={kind!r} but no xmlUrl"))
    elif kind == "include":
        document.ignored.append((line, "included OPML files are not followed"))
    return title, not url


def _feed_url(url: str) -> str:
    """An http(s) URL from an OPML ``xmlUrl`` (``feed://`` and ``feed:https://`` accepted), or ''."""
    url = url.strip()
    if url.lower().startswith("feed:"):
        rest = url[5:]
        url = rest if rest.lower().startswith(("http://", "https://")) else "http:" + rest
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return url


def _text(element: etree._Element | None) -> str:
    return " ".join((element.text or "").split()) if element is not None else ""


def _line(element: etree._Element | None) -> int:
    return (element.sourceline or 1) if element is not None else 1
