"""Read post HTML once: its plain text, links, hashtags, mentions and images (no I/O, no sanitizing)."""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass, field

import lxml.etree
import lxml.html

from ..models import Media
from ..urls import absolute, canonical_url

__all__ = ["Scanned", "plain", "scan_html"]

_BLOCKS = {"p", "div", "br", "li", "ul", "ol", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "tr", "hr"}
_SPACES = re.compile(r"[ \t\u00a0]+")
_ANY_SPACE = re.compile(r"\s+")
_LINES = re.compile(r"\s*\n\s*")
_ABSOLUTE = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|#)")
_TAG_PATH = re.compile(r"/tags?/([^/?#]+)/?$|/hashtag/([^/?#]+)/?$")


@dataclass(slots=True)
class Scanned:
    """What a post's HTML says: plain text and the links, hashtags, mentions and images in it."""

    text: str = ""
    html: str = ""  # the markup with every link and image made absolute
    links: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    images: list[Media] = field(default_factory=list)


def plain(text: str) -> str:
    """Collapse white space and unescape entities of a title or short text."""
    return _ANY_SPACE.sub(" ", htmllib.unescape(text or "")).strip()


def scan_html(markup: str, base: str = "") -> Scanned:
    """Plain text, links, hashtags, mentions and images of an HTML fragment, hrefs made absolute."""
    result = Scanned(html=markup)
    if not markup or not markup.strip():
        return result
    if "<" not in markup:
        result.text = _tidy(htmllib.unescape(markup))
        return result
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        result.text = _tidy(re.sub(r"<[^>]+>", " ", markup))
        return result
    relative = False
    for el in root.iter("a", "img"):
        raw = (el.get("src") or el.get("data-src") or "") if el.tag == "img" else (el.get("href") or "")
        relative = relative or bool(raw and not _ABSOLUTE.match(raw))
        if el.tag == "img":
            if raw and not raw.startswith("data:"):
                result.images.append(Media(absolute(raw, base), "image", plain(el.get("alt") or "")))
            continue
        href = absolute(raw, base)
        if href.startswith(("http://", "https://")):
            _classify_anchor(el, href, result)
    if relative and base:  # later stages see the post without its feed's base: make links absolute now
        root.make_links_absolute(base, handle_failures="ignore")
        result.html = "".join(lxml.html.tostring(child, encoding="unicode") for child in root)
        result.html = (root.text or "") + result.html
    result.text = _text(root)
    return result


def _classify_anchor(el: lxml.html.HtmlElement, href: str, result: Scanned) -> None:
    classes = (el.get("class") or "").split()
    label = el.text_content().strip()
    tag_path = _TAG_PATH.search(href)
    tag = _hashtag(classes, label, tag_path)
    if tag:
        if tag.lower() not in (t.lower() for t in result.tags):
            result.tags.append(tag)
    elif "mention" in classes or (label.startswith("@") and "/@" in href):
        result.mentions.append(href)
    else:
        link = canonical_url(href)
        if link not in result.links:
            result.links.append(link)


def _hashtag(classes: list[str], label: str, tag_path: re.Match[str] | None) -> str:
    """The tag an anchor names (from its label, else its /tags/NAME path), or "" when it is no
    hashtag or an empty one (``<a class="hashtag">#</a>``, which is then an ordinary link)."""
    if "hashtag" not in classes and not (label.startswith("#") and tag_path):
        return ""
    from_path = next((g for g in tag_path.groups() if g), "") if tag_path else ""
    return label.lstrip("#").strip() or from_path


def _text(root: lxml.html.HtmlElement) -> str:
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag in ("script", "style"):
            el.text = ""
        elif el.tag in _BLOCKS:
            el.tail = "\n" + (el.tail or "")
    return _tidy(root.text_content())


def _tidy(text: str) -> str:
    return _LINES.sub("\n", _SPACES.sub(" ", text)).strip()
