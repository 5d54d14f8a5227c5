"""Deterministic, realistic Mastodon account RSS 2.0 documents for the benchmarks.

Each document looks like what Mastodon 4.x serves at ``/@user.rss``: a channel with the
account's name, "Public posts from @user@server", an avatar ``<image>``, and items whose
``guid``/``link`` is the status URL ``https://server/@user/ID``, with an RFC 822 ``pubDate``,
an entity-escaped HTML ``description`` (paragraphs, hashtag anchors, the odd mention and
external link with Mastodon's invisible/ellipsis spans), ``media:content`` attachments with a
rating and alt text, and one ``category`` per hashtag. Items are about 1 KB, as in real feeds
(the test fixture ``tests/fixtures/feeds/mastodon_account.rss`` and the shared corpus), so a
20-item document is about 20 KB.

The same ``(index, seed, now)`` always yields the same bytes, so the server process and the
measuring process can each build the documents without shipping them between processes.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

__all__ = ["SERVER_NAMES", "FeedDoc", "feed_path", "make_feed", "server_name"]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Real instance names (only ever written into documents, never contacted); more are synthesised.
SERVER_NAMES = (
    "mastodon.social",
    "hachyderm.io",
    "fosstodon.org",
    "mstdn.social",
    "infosec.exchange",
    "mas.to",
    "mastodon.online",
    "med-mastodon.com",
    "techhub.social",
    "mastodon.world",
    "social.vivaldi.net",
    "toot.community",
)

_FIRST = _words(
    "Alice Ana Ben Chloé Dario Elena Farid Grace Hiro Ines Jonas Kemi Lars Maya Nadia Omar Priya Quinn Rosa "
    "Sami Tomás Uma Viktor Wen Yara Zoe"
)
_LAST = _words("Moreau Okafor Lindqvist Tanaka Rossi Nguyen Haddad Kowalski Silva Müller O'Brien Patel Schmidt Costa")
_TAGS = _words(
    "HITsm HealthIT FHIR interoperability EHR telehealth TEFCA digitalhealth nursing informatics AI "
    "privacy HL7 openEHR patientsafety HIMSS cybersecurity gardening photography coffee running"
)
_WORDS = _words(
    "the a our we our team this week patients clinicians records data exchange portal workflow pilot "
    "rollout hospital clinic ballot standard API vendor burden documentation notes orders results imaging "
    "lab pharmacy consent identity matching queries network payer prior authorization rural broadband "
    "follow-ups monitoring dashboards alerts fatigue inbox measures quality outcomes equity access "
    "finally again still today tomorrow slowly quickly really honestly surprisingly better worse faster "
    "is are was were will can should might could has have shipped opened closed merged tested deployed"
)
_LINK_HOSTS = ("www.healthit.gov", "build.fhir.org", "www.hl7.org", "news.example.org", "blog.example.com")
_ALTS = (
    "Screenshot of a FHIR Patient resource in JSON with the identifier array highlighted.",
    "Line chart: portal sign-ups rising from 12% in January to 48% in October.",
    "A whiteboard covered in sticky notes grouped by workflow step.",
    "Three people at a conference booth in front of a banner that reads Interoperability Showcase.",
    "Close-up of a hospital wristband with a barcode.",
    "A cup of coffee next to a laptop showing a slide deck.",
)


@dataclass(frozen=True, slots=True)
class FeedDoc:
    """One generated feed: where it lives on the server, its bytes and its validators."""

    path: str
    body: bytes
    etag: str
    last_modified: str
    items: int


def server_name(host_index: int) -> str:
    """The Mastodon server name written into the documents served by host (port) ``host_index``."""
    if host_index < len(SERVER_NAMES):
        return SERVER_NAMES[host_index]
    return f"social{host_index}.example"


def _account(index: int, seed: int) -> tuple[str, str]:
    rng = random.Random(f"{seed}:{index}:account")
    return rng.choice(_FIRST), rng.choice(_LAST)


def _username(first: str, index: int) -> str:
    return f"{first.lower().replace('é', 'e').replace('á', 'a')}{index}"


def feed_path(index: int, seed: int = 1) -> str:
    """The path of the ``index``-th account's feed on its server: ``/@user.rss``."""
    return f"/@{_username(_account(index, seed)[0], index)}.rss"


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice((".", ".", ".", "!", "?"))


def _hashtag(server: str, tag: str) -> str:
    return f'<a href="https://{server}/tags/{tag}" class="mention hashtag" rel="tag">#<span>{tag}</span></a>'


def _status_html(rng: random.Random, server: str, tags: list[str], users: list[str]) -> str:
    parts: list[str] = []
    if rng.random() < 0.06:
        parts.append(f"<p><strong>Content warning:</strong> {escape(_sentence(rng))}</p><hr>")
    body = " ".join(_sentence(rng) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.3:
        other = rng.choice(users)
        body = (
            f'<span class="h-card" translate="no"><a href="https://{server}/@{other}" class="u-url mention">'
            f"@<span>{other}</span></a></span> {body}"
        )
    if rng.random() < 0.35:
        host = rng.choice(_LINK_HOSTS)
        path = f"news/{rng.randrange(10**6)}-{rng.choice(_WORDS)}-{rng.choice(_WORDS)}"
        query = "?utm_source=mastodon&amp;utm_medium=social" if rng.random() < 0.5 else ""
        shown, rest = f"{host}/{path}"[:30], f"{host}/{path}"[30:] + query
        body += (
            f' <a href="https://{host}/{path}{query}" target="_blank" rel="nofollow noopener" translate="no">'
            f'<span class="invisible">https://</span><span class="ellipsis">{shown}</span>'
            f'<span class="invisible">{rest}</span></a>'
        )
    parts.append(f"<p>{body}</p>")
    parts.append("<p>" + " ".join(_hashtag(server, t) for t in tags) + "</p>")
    return "".join(parts)


def _media(rng: random.Random, server: str, status_id: int) -> str:
    out: list[str] = []
    for k in range(rng.choice((0, 0, 0, 0, 1, 1, 2))):
        digits = f"{status_id + k:018d}"
        path = "/".join(digits[i : i + 3] for i in range(0, 18, 3))
        ext, mime = rng.choice((("jpg", "image/jpeg"), ("png", "image/png"), ("mp4", "video/mp4")))
        medium = "video" if mime.startswith("video") else "image"
        alt = rng.choice(_ALTS)
        rating = "adult" if rng.random() < 0.03 else "nonadult"
        out.append(
            f'      <media:content url="https://files.{server}/media_attachments/files/{path}/original/'
            f'{rng.getrandbits(64):016x}.{ext}" type="{mime}" fileSize="{rng.randint(20_000, 900_000)}" '
            f'medium="{medium}">\n'
            f'        <media:rating scheme="urn:simple">{rating}</media:rating>\n'
            f'        <media:description type="plain">{escape(alt)}</media:description>\n'
            "      </media:content>\n"
        )
    return "".join(out)


def make_feed(index: int, *, host_index: int, items: int = 20, seed: int = 1, now: datetime | None = None) -> FeedDoc:
    """The ``index``-th account's feed, on the server numbered ``host_index``; deterministic."""
    now = (now or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)
    rng = random.Random(f"{seed}:{index}")
    server = server_name(host_index)
    first, last = _account(index, seed)
    user = _username(first, index)
    name = f"{first} {last}"
    users = [_username(rng.choice(_FIRST), rng.randrange(5000)) for _ in range(5)]
    avatar = f"https://files.{server}/accounts/avatars/{index:09d}/original/{rng.getrandbits(64):016x}.png"
    when = now - timedelta(minutes=rng.randint(1, 90))
    newest = when
    out: list[str] = []
    for k in range(items):
        ms = int(when.timestamp() * 1000)
        status_id = (ms << 16) | ((index * items + k) & 0xFFFF)
        url = f"https://{server}/@{user}/{status_id}"
        tags = rng.sample(_TAGS, rng.randint(1, 3))
        html = _status_html(rng, server, tags, users)
        categories = "".join(f"      <category>{t.lower()}</category>\n" for t in tags)
        out.append(
            "    <item>\n"
            f'      <guid isPermaLink="true">{url}</guid>\n'
            f"      <link>{url}</link>\n"
            f"      <pubDate>{format_datetime(when)}</pubDate>\n"
            f"      <description>{escape(html, quote=False)}</description>\n"
            f"{_media(rng, server, status_id)}"
            f"{categories}"
            "    </item>\n"
        )
        when -= timedelta(minutes=rng.randint(5, 600))
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:webfeeds="http://webfeeds.org/rss/1.0" xmlns:media="http://search.yahoo.com/mrss/">\n'
        "  <channel>\n"
        f"    <title>{escape(name)}</title>\n"
        f"    <description>Public posts from @{user}@{server}</description>\n"
        f"    <link>https://{server}/@{user}</link>\n"
        "    <image>\n"
        f"      <url>{avatar}</url>\n"
        f"      <title>{escape(name)}</title>\n"
        f"      <link>https://{server}/@{user}</link>\n"
        "    </image>\n"
        f"    <lastBuildDate>{format_datetime(newest)}</lastBuildDate>\n"
        f"    <webfeeds:icon>{avatar}</webfeeds:icon>\n"
        "    <generator>Mastodon v4.4.3</generator>\n"
        f"{''.join(out)}"
        "  </channel>\n"
        "</rss>\n"
    )
    body = doc.encode("utf-8")
    etag = 'W/"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
    return FeedDoc(feed_path(index, seed), body, etag, format_datetime(newest, usegmt=True), items)
