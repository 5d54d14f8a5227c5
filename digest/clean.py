"""Make post HTML safe to mail: an allowlist sanitizer (nh3) that runs last, before rendering.

Scripts, styles, event handlers, ``javascript:``/``data:`` URLs, tracking pixels and remote fonts go;
links stay, made absolute; images keep their alt text and a capped width.
"""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html
import nh3

__all__ = ["MAX_IMAGE_WIDTH", "Cleaned", "clean_html", "is_tracker", "safe_url", "sanitize", "text_to_html"]

MAX_IMAGE_WIDTH = 560  # the content column of an edition, in CSS pixels

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "cite", "code", "del", "div", "em", "figcaption", "figure",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "mark", "ol", "p", "pre", "q",
    "s", "small", "span", "strong", "sub", "sup", "u", "ul",
}  # fmt: skip
# Removed with everything inside them (the rest of an unknown tag's text is kept).
_DROP_WITH_CONTENT = {
    "script", "style", "template", "noscript", "iframe", "frame", "frameset", "object", "embed", "applet",
    "svg", "math", "form", "select", "textarea", "button", "title", "head", "video", "audio", "canvas", "map",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "title"}, "abbr": {"title"}, "ol": {"start"}}
_SCHEMES = {"http", "https", "mailto"}
_LAZY_SOURCES = ("data-src", "data-lazy-src", "data-original", "data-orig-file", "data-url")
_PLACEHOLDER_SRC = re.compile(r"(^data:)|blank\.gif|spacer\.gif|placeholder|lazy[-_]?load|/1x1\.|pixel\.gif", re.I)
_SIZE = re.compile(r"^\s*(\d+)(?:px)?\s*$")
# An image its own style hides or shrinks to nothing: width/height 0 (any unit), up to 2 px,
# display:none, visibility:hidden, opacity:0. Each is a tracking pixel in a normal image's clothes.
_STYLE_HIDDEN = re.compile(
    r"(?:^|;)\s*(?:(?:max-)?(?:width|height)\s*:\s*(?:0*\.?0+(?:px|em|rem|pt|%|vw|vh)?|(?:[12](?:\.\d*)?|\.\d+)(?:px)?)"
    r"|display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0*(?:\.0*)?)\s*(?:!important\s*)?(?:;|$)",
    re.I,
)
# Image hosts and paths that only count opens: analytics beacons, feed and mail trackers.
TRACKER_HOSTS = (
    "doubleclick.net",
    "google-analytics.com",
    "googletagmanager.com",
    "scorecardresearch.com",
    "quantserve.com",
    "pixel.wp.com",
    "stats.wordpress.com",
    "feeds.feedburner.com",
    "feedproxy.google.com",
    "pixel.facebook.com",
    "analytics.twitter.com",
    "bat.bing.com",
    "ct.pinterest.com",
    "pi.pardot.com",
    "pixel.mathtag.com",
    "mc.yandex.ru",
    "ct.sendgrid.net",
    "list-manage.com",
)
_TRACKER_PATH = re.compile(r"/(pixel|beacon|track(ing)?/open|open\.php|wf/open|e/o/|~r/)|[?&]utm_[a-z]+=.*&?open", re.I)


@dataclass(frozen=True, slots=True)
class Cleaned:
    """Sanitized HTML, whether it was shortened, and every image URL the input showed (kept or not)."""

    html: str
    cut: bool = False
    images: frozenset[str] = frozenset()


def safe_url(url: str, base: str = "") -> str:
    """``url`` made absolute against ``base`` when it is http, https or mailto; ``""`` otherwise."""
    url = (url or "").strip()
    if not url or any(c in url for c in "\x00\r\n\t"):
        return ""
    try:
        url = urljoin(base, url) if base else url
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in _SCHEMES else ""


def is_tracker(url: str) -> bool:
    """True for an image URL that counts opens rather than shows something (known beacon hosts and paths)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    host = (parts.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in TRACKER_HOSTS):
        return True
    return bool(_TRACKER_PATH.search(parts.path + ("?" + parts.query if parts.query else "")))


def sanitize(html: str, base_url: str) -> str:
    """Safe HTML for an email: allowlisted tags and attributes, http/https/mailto links made absolute."""
    return clean_html(html, base_url).html


def clean_html(html: str, base_url: str, limit: int | None = None) -> Cleaned:
    """Sanitize a post's HTML; with ``limit``, keep whole blocks up to about that many characters of text.

    A first pass (lxml) tidies what the sanitizer cannot judge: lazy images get their real ``src``,
    tracking pixels and non-http images go, Mastodon's hidden URL parts are dropped. nh3 then runs
    last, so whatever the first pass missed still meets the allowlist.
    """
    if not html or not html.strip():
        return Cleaned("")
    root = _parse(html)
    if root is None:
        return Cleaned(text_to_html(re.sub(r"<[^>]*>", " ", html)))
    images = _tidy(root, base_url)
    cut = _shorten(root, limit) if limit else False
    return Cleaned(_nh3(_inner_html(root), base_url), cut, frozenset(images))


def text_to_html(text: str) -> str:
    """Plain text as HTML paragraphs: escaped, blank lines split paragraphs, http(s) URLs linked."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()]
    return "".join(f"<p>{_linkify(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _linkify(text: str) -> str:
    out, last = [], 0
    for match in re.finditer(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]", text):
        url = match.group(0)
        out += [
            htmllib.escape(text[last : match.start()]),
            f'<a href="{htmllib.escape(url)}">{htmllib.escape(url)}</a>',
        ]
        last = match.end()
    out.append(htmllib.escape(text[last:]))
    return nh3.clean("".join(out), tags={"a"}, attributes={"a": {"href"}}, url_schemes={"http", "https"})


def _parse(html: str) -> lxml.html.HtmlElement | None:
    try:
        return lxml.html.fragment_fromstring(html, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return None


def _tidy(root: lxml.html.HtmlElement, base_url: str) -> list[str]:
    """Drop hidden and dangerous subtrees, resolve lazy images, remove pixels; return every image URL seen."""
    for el in list(root.iter(*_DROP_WITH_CONTENT)):
        el.drop_tree()
    for span in list(root.iter("span")):
        classes = (span.get("class") or "").split()
        if "invisible" in classes:
            span.drop_tree()  # Mastodon hides "https://" and the tail of long URLs this way
        elif "ellipsis" in classes:
            span.text = (span.text or "") + "…"
    seen: list[str] = []
    for img in list(root.iter("img")):
        src = _image_source(img, base_url)
        if src:
            seen.append(src)
        if not src.startswith(("http://", "https://")) or _is_pixel(img) or is_tracker(src):
            img.drop_tree()
        else:
            img.set("src", src)
    return seen


def _image_source(img: lxml.html.HtmlElement, base_url: str) -> str:
    """The URL an image really shows: ``src``, or its lazy-loading attribute when ``src`` is a placeholder."""
    src = (img.get("src") or "").strip()
    if not src or _PLACEHOLDER_SRC.search(src):
        lazy = next((img.get(a) for a in _LAZY_SOURCES if (img.get(a) or "").strip()), "")
        srcset = (img.get("data-srcset") or img.get("srcset") or "").strip()
        src = lazy or (srcset.split(",")[0].split()[0] if srcset else "") or src
    return safe_url(src, base_url)


def _is_pixel(img: lxml.html.HtmlElement) -> bool:
    """A tracking image: 2 pixels or less by its attributes or style, or hidden (``hidden``, a style)."""
    sizes = [_SIZE.match(img.get(a) or "") for a in ("width", "height")]
    if any(m and int(m.group(1)) <= 2 for m in sizes) or img.get("hidden") is not None:
        return True
    return bool(_STYLE_HIDDEN.search(img.get("style") or ""))


def _shorten(root: lxml.html.HtmlElement, limit: int) -> bool:
    """Keep whole top-level blocks up to about ``limit`` characters of text (True when something was cut).

    Text up to half as long again is kept whole; when not even the first block fits, an excerpt of
    the text replaces the whole body.
    """
    if len(root.text_content().strip()) <= limit * 1.5:
        return False
    total = len((root.text or "").strip())
    children = list(root)
    kept = 0
    for child in children:
        size = len(child.text_content().strip()) + len((child.tail or "").strip())
        if total + size > limit:
            break
        total += size
        kept += 1
    if kept == 0 or total > limit:
        text = root.text_content()
        kept = 0
        root.text = None
    for extra in children[kept:]:
        extra.tail = None
        extra.drop_tree()
    if kept == 0:
        paragraph = lxml.html.Element("p")
        paragraph.text = _excerpt(text, limit)
        root.append(paragraph)
    return True


def _excerpt(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-") + "…"


def _inner_html(root: lxml.html.HtmlElement) -> str:
    head = htmllib.escape(root.text or "", quote=False)
    return head + "".join(lxml.html.tostring(child, encoding="unicode") for child in root)


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "width":
        match = _SIZE.match(value)
        return str(min(int(match.group(1)), MAX_IMAGE_WIDTH)) if match else None
    return value


def _nh3(html: str, base_url: str) -> str:
    base = safe_url(base_url)
    relative: Any = ("rewrite_with_base", base) if base.startswith(("http://", "https://")) else "deny"
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        url_relative=relative,
        strip_comments=True,
    ).strip()
