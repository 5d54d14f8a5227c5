"""Bluesky: an account's posts from the public AppView (no key), and hashtag search when logged in."""

from __future__ import annotations

import html as htmllib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from ..config import expand_env
from ..errors import PermanentFetchError
from ..models import Author, Engagement, Media, Post, SourceState
from ..urls import canonical_url, post_id
from .base import Context, Outcome, load_cursor, read_json
from .guard import Skipped, sound
from .html import plain
from .parse import parse_datetime

__all__ = ["BlueskyAuthorJob", "BlueskySearchJob", "post_view_post", "richtext_html"]

PAGE = 100
OPT_OUT_LABEL = "!no-unauthenticated"
_SENSITIVE_LABELS = {"porn", "sexual", "nudity", "graphic-media", "gore", "!warn"}


def richtext_html(text: str, facets: list[dict[str, Any]]) -> str:
    """Post text as HTML, with link, mention and tag facets (UTF-8 byte ranges) made into anchors."""
    data = text.encode("utf-8")
    spans = []
    for facet in facets or ():
        index = facet.get("index") or {}
        start, end = index.get("byteStart"), index.get("byteEnd")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(data):
            continue
        href = _facet_href(facet.get("features") or [])
        if href:
            spans.append((start, end, href))
    out, pos = [], 0
    for start, end, href in sorted(spans):
        if start < pos:
            continue  # overlapping facets: keep the first
        out.append(_escape(data[pos:start]))
        out.append(f'<a href="{htmllib.escape(href)}">{_escape(data[start:end])}</a>')
        pos = end
    out.append(_escape(data[pos:]))
    return "<p>" + "".join(out).replace("\n", "<br>") + "</p>"


def _escape(chunk: bytes) -> str:
    return htmllib.escape(chunk.decode("utf-8", errors="replace"), quote=False)


def _facet_href(features: list[dict[str, Any]]) -> str:
    for feature in features:
        kind = str(feature.get("$type", ""))
        if kind.endswith("#link") and feature.get("uri"):
            return str(feature["uri"])
        if kind.endswith("#mention") and feature.get("did"):
            return f"https://bsky.app/profile/{feature['did']}"
        if kind.endswith("#tag") and feature.get("tag"):
            return f"https://bsky.app/hashtag/{quote(str(feature['tag']))}"
    return ""


def opted_out(author: dict[str, Any]) -> bool:
    """True when an author asks not to be shown to logged-out readers."""
    return any(label.get("val") == OPT_OUT_LABEL for label in author.get("labels") or ())


def post_view_post(view: dict[str, Any], source: str, reposted_by: str = "") -> Post:
    """One ``app.bsky.feed.defs#postView`` as a `Post`."""
    record = view.get("record") or {}
    author = view.get("author") or {}
    handle = str(author.get("handle") or author.get("did") or "")
    uri = str(view.get("uri") or "")
    rkey = uri.rsplit("/", 1)[-1]
    features = [f for facet in record.get("facets") or () for f in facet.get("features") or ()]
    links = [
        canonical_url(str(f["uri"])) for f in features if str(f.get("$type", "")).endswith("#link") and f.get("uri")
    ]
    tags = [str(f["tag"]) for f in features if str(f.get("$type", "")).endswith("#tag") and f.get("tag")]
    media, external = _embed_media(view.get("embed") or {})
    labels = [str(label.get("val")) for label in view.get("labels") or () if label.get("val")]
    text = str(record.get("text") or "")
    return Post(
        id=post_id(uri),
        uri=uri,
        source=source,
        url=f"https://bsky.app/profile/{handle}/post/{rkey}",
        published=parse_datetime(record.get("createdAt")) or parse_datetime(view.get("indexedAt")) or datetime.min,
        author=Author(plain(str(author.get("displayName") or handle)), handle, f"https://bsky.app/profile/{handle}"),
        text=text.strip(),
        html=richtext_html(text, record.get("facets") or []),
        language=(record.get("langs") or [None])[0],
        tags=tuple(dict.fromkeys(tags + [str(t) for t in record.get("tags") or ()])),
        mentions=tuple(
            str(f["did"]) for f in features if str(f.get("$type", "")).endswith("#mention") and f.get("did")
        ),
        links=tuple(dict.fromkeys(links + external)),
        media=tuple(media),
        is_reply="reply" in record,
        in_reply_to=str(((record.get("reply") or {}).get("parent") or {}).get("uri") or ""),
        is_boost=bool(reposted_by),
        is_quote=_is_quote(view.get("embed") or {}),
        boosted_by=reposted_by,
        content_warning=", ".join(label for label in labels if label in _SENSITIVE_LABELS),
        sensitive=any(label in _SENSITIVE_LABELS for label in labels),
        engagement=Engagement(
            view.get("replyCount"), view.get("repostCount"), view.get("likeCount"), view.get("quoteCount")
        ),
    )


def _embed_media(embed: dict[str, Any]) -> tuple[list[Media], list[str]]:
    kind = str(embed.get("$type", ""))
    if kind.startswith("app.bsky.embed.recordWithMedia"):
        return _embed_media(embed.get("media") or {})
    if kind.startswith("app.bsky.embed.images"):
        return [
            Media(str(i.get("fullsize") or i.get("thumb")), "image", plain(str(i.get("alt") or "")))
            for i in embed.get("images") or ()
            if i.get("fullsize") or i.get("thumb")
        ], []
    if kind.startswith("app.bsky.embed.video"):
        url = str(embed.get("playlist") or "")
        return ([Media(url, "video", plain(str(embed.get("alt") or "")))] if url else []), []
    if kind.startswith("app.bsky.embed.external"):
        uri = str((embed.get("external") or {}).get("uri") or "")
        return [], [canonical_url(uri)] if uri else []
    return [], []


def _is_quote(embed: dict[str, Any]) -> bool:
    return str(embed.get("$type", "")).startswith(("app.bsky.embed.record#", "app.bsky.embed.recordWithMedia"))


async def _collect(
    ctx: Context,
    state: SourceState,
    key: str,
    url: str,
    items: str,
    headers: dict[str, str] | None = None,
    owner: str = "",
) -> Outcome:
    """Page back by cursor until posts already seen or older than the window; ``items`` names the
    list in each answer (``feed`` of FeedViewPosts or ``posts`` of PostViews)."""
    seen = str(load_cursor(state).get("indexed_at") or "")
    outcome, newest, cursor, pages, unreadable = Outcome(), seen, "", 0, Skipped()
    while pages < ctx.settings.collect.page_limit and not outcome.complete:
        page_url = f"{url}&{urlencode({'cursor': cursor})}" if cursor else url
        page = read_json(await ctx.fetcher.get(page_url, headers=headers, accept="application/json"), dict)
        pages += 1
        found = page.get(items) or ()
        for item in found if isinstance(found, list) else ():
            with unreadable.guard():
                view, reason = item.get("post", item), item.get("reason") or {}
                stamp = str(reason.get("indexedAt") or view.get("indexedAt") or "")
                when = parse_datetime(stamp)
                if (seen and stamp and stamp <= seen) or (when and when < ctx.window_start):
                    outcome.complete = True
                    break
                newest = max(newest, stamp)
                author = view.get("author") or {}
                if opted_out(author):
                    if owner and owner in (author.get("handle"), author.get("did")):
                        raise PermanentFetchError(
                            "the author asks not to be shown to logged-out readers (!no-unauthenticated)"
                        )
                    continue
                booster = str((reason.get("by") or {}).get("handle") or "")
                outcome.posts.append(sound(post_view_post(view, key, booster)))
        cursor = str(page.get("cursor") or "")
        outcome.complete = outcome.complete or not cursor or not page.get(items)
    outcome.cursor = json.dumps({"indexed_at": newest})
    if unreadable.count:
        outcome.notes.append(unreadable.note())
    return outcome


@dataclass(slots=True)
class BlueskyAuthorJob:
    """An account's feed from the public AppView, paged by cursor back to what is stored."""

    key: str
    kind: str
    url: str
    actor: str
    appview: str

    async def run(self, ctx: Context, state: SourceState) -> Outcome:
        query = urlencode({"actor": self.actor, "limit": PAGE})
        url = f"{self.appview}/xrpc/app.bsky.feed.getAuthorFeed?{query}"
        return await _collect(ctx, state, self.key, url, "feed", owner=self.actor)


@dataclass(slots=True)
class BlueskySearchJob:
    """Posts carrying a hashtag, from Bluesky search; needs a login (``[bluesky]`` handle and app password)."""

    key: str
    kind: str
    url: str
    tag: str
    service: str
    identifier: str
    password: str

    async def run(self, ctx: Context, state: SourceState) -> Outcome:
        session = read_json(
            await ctx.fetcher.post_json(
                f"{self.service}/xrpc/com.atproto.server.createSession",
                {"identifier": self.identifier, "password": expand_env(self.password)},
            ),
            dict,
        )
        auth = {"Authorization": f"Bearer {session.get('accessJwt', '')}"}
        query = urlencode({"q": f"#{self.tag}", "sort": "latest", "limit": PAGE})
        url = f"{self.service}/xrpc/app.bsky.feed.searchPosts?{query}"
        return await _collect(ctx, state, self.key, url, "posts", headers=auth)
