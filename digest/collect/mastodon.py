"""Mastodon accounts and hashtags: the public REST API (engagement counts, paging) with RSS as fallback."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from ..errors import FetchError, PermanentFetchError
from ..models import Author, Engagement, Media, Post, SourceState
from ..urls import canonical_url, mastodon_identity, post_id
from .base import Context, Job, Outcome, load_cursor, read_json
from .feeds import FeedJob
from .guard import Skipped, sound
from .html import plain, scan_html
from .parse import parse_datetime

__all__ = ["FallbackJob", "MastodonApiJob", "account_job", "hashtag_job", "opted_out", "status_post"]

API_PAGE = 40
TAG_RSS_LIMIT = 200
_OPT_OUT = re.compile(r"#no(bot|index)\b", re.IGNORECASE)
_FALLBACK_STATUSES = {401, 403, 404, 405, 422, 501}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a status with no readable date: the oldest possible


def opted_out(account: dict[str, Any]) -> bool:
    """True when an account asks not to be indexed or read by bots."""
    return bool(account.get("noindex")) or bool(_OPT_OUT.search(plain(scan_html(account.get("note") or "").text)))


def handle_of(account: dict[str, Any], server: str) -> str:
    acct = str(account.get("acct") or account.get("username") or "")
    return f"@{acct}" if "@" in acct else f"@{acct}@{server}"


def status_post(status: dict[str, Any], server: str, source: str, parents: Mapping[str, str] | None = None) -> Post:
    """One API Status (or the status it boosts) as a `Post`.

    A reply's ``in_reply_to`` is its parent's URL when ``parents`` (server-local id -> URL, the
    statuses read in the same run) knows it, else ``"server:id"``: Mastodon ids are server-local.
    """
    booster = ""
    if isinstance(status.get("reblog"), dict):
        booster = handle_of(status.get("account") or {}, server)
        status = status["reblog"]
    account = status.get("account") or {}
    url = str(status.get("url") or status.get("uri") or "")
    identity = mastodon_identity(str(status.get("uri") or ""), url)
    scanned = scan_html(str(status.get("content") or ""), url)
    card = status.get("card") or {}
    links = list(scanned.links)
    if card.get("url"):
        links.append(canonical_url(str(card["url"])))
    return Post(
        id=post_id(identity),
        uri=identity,
        source=source,
        url=url,
        published=parse_datetime(status.get("created_at")) or _EPOCH,
        author=Author(
            plain(str(account.get("display_name") or account.get("username") or "")),
            handle_of(account, server),
            str(account.get("url") or ""),
        ),
        text=scanned.text,
        html=str(status.get("content") or ""),
        language=status.get("language") or None,
        tags=tuple(
            dict.fromkeys([str(t.get("name")) for t in status.get("tags") or () if t.get("name")] + scanned.tags)
        ),
        mentions=tuple(handle_of(m, server) for m in status.get("mentions") or ()),
        links=tuple(dict.fromkeys(links)),
        media=tuple(
            Media(
                str(m.get("url") or m.get("remote_url") or ""),
                _media_type(m.get("type")),
                plain(m.get("description") or ""),
            )
            for m in status.get("media_attachments") or ()
            if m.get("url") or m.get("remote_url")
        ),
        is_reply=status.get("in_reply_to_id") is not None,
        in_reply_to=_parent(status, server, parents or {}),
        is_boost=bool(booster),
        is_quote=bool(status.get("quote")),
        boosted_by=booster,
        content_warning=plain(str(status.get("spoiler_text") or "")),
        sensitive=bool(status.get("sensitive")),
        engagement=Engagement(
            status.get("replies_count"),
            status.get("reblogs_count"),
            status.get("favourites_count"),
            status.get("quotes_count"),
        ),
    )


def _parent(status: dict[str, Any], server: str, parents: Mapping[str, str]) -> str:
    parent = status.get("in_reply_to_id")
    if parent is None or parent == "":
        return ""
    return parents.get(str(parent)) or f"{server}:{parent}"


def _status_urls(statuses: list[dict[str, Any]]) -> dict[str, str]:
    """Server-local id -> URL of every status in a page, boosted ones included."""
    found = {}
    for status in statuses:
        if not isinstance(status, dict):
            continue  # skipped as unreadable when the page is read
        for item in (status, status.get("reblog")):
            if isinstance(item, dict) and item.get("id") and (item.get("url") or item.get("uri")):
                found[str(item["id"])] = str(item.get("url") or item.get("uri"))
    return found


def _media_type(kind: Any) -> str:
    return {"image": "image", "gifv": "video", "video": "video", "audio": "audio"}.get(str(kind), "other")


def _older(a: str, b: str) -> bool:
    """Mastodon ids sort as numbers (snowflakes); compare as numbers when they are."""
    return int(a) <= int(b) if a.isdigit() and b.isdigit() else a <= b


@dataclass(slots=True)
class MastodonApiJob:
    """An account's statuses or a hashtag's timeline on one server, paged back to what is stored."""

    key: str
    kind: str
    url: str
    server: str
    base: str
    account: str = ""  # "user" for an account job
    tag: str = ""  # "HITsm" for a hashtag job

    async def run(self, ctx: Context, state: SourceState) -> Outcome:
        cursor = load_cursor(state)
        base = self.base
        if self.account:
            account_id = cursor.get("account_id") or await self._lookup(ctx, base)
            first = f"{base}/api/v1/accounts/{account_id}/statuses"
        else:
            account_id = ""
            first = f"{base}/api/v1/timelines/tag/{quote(self.tag)}"
        since = str(cursor.get("since_id") or "")
        query = {"limit": API_PAGE, **({"since_id": since} if since else {})}
        outcome, newest = await self._page_back(ctx, f"{first}?{urlencode(query)}", since)
        outcome.cursor = json.dumps({"account_id": account_id, "since_id": newest or since})
        return outcome

    async def _lookup(self, ctx: Context, base: str) -> str:
        result = await ctx.fetcher.get(
            f"{base}/api/v1/accounts/lookup?acct={quote(self.account)}", accept="application/json"
        )
        account = read_json(result, dict)
        if opted_out(account):
            raise PermanentFetchError(
                f"{result.url}: the author asks not to be read by bots (#nobot/#noindex in profile)"
            )
        if not account.get("id"):
            raise PermanentFetchError(f"no account id in the lookup answer from {result.url}")
        return str(account["id"])

    async def _page_back(self, ctx: Context, url: str | None, since: str) -> tuple[Outcome, str]:
        outcome, newest, pages, skipped, unreadable = Outcome(), "", 0, 0, Skipped()
        parents: dict[str, str] = {}
        while url and pages < ctx.settings.collect.page_limit:
            result = await ctx.fetcher.get(url, accept="application/json")
            statuses = read_json(result, list)
            pages += 1
            parents.update(_status_urls(statuses))
            if not statuses:
                outcome.complete = True
                break
            for status in statuses:
                with unreadable.guard():
                    if not isinstance(status, dict):
                        raise ValueError(f"a status is a {type(status).__name__}, not an object")
                    sid = str(status.get("id", ""))
                    if since and sid and _older(sid, since):
                        outcome.complete = True
                        break
                    newest = newest or sid
                    wrapper_time = parse_datetime(status.get("created_at"))
                    if wrapper_time and wrapper_time < ctx.window_start:
                        outcome.complete = True
                    original = status.get("reblog") or status
                    if opted_out(original.get("account") or {}) and not self.account:
                        skipped += 1
                        continue
                    outcome.posts.append(sound(status_post(status, self.server, self.key)))
            if outcome.complete:
                break
            url = result.link_next
        if not url:
            outcome.complete = True
        # a reply usually comes a page before its parent: resolve parent ids once every page is read
        prefix = f"{self.server}:"
        outcome.posts = [
            replace(p, in_reply_to=parents[p.in_reply_to[len(prefix) :]])
            if p.in_reply_to.startswith(prefix) and p.in_reply_to[len(prefix) :] in parents
            else p
            for p in outcome.posts
        ]
        if skipped:
            outcome.notes.append(f"{skipped} posts skipped: their authors opted out (#nobot/#noindex)")
        if unreadable.count:
            outcome.notes.append(unreadable.note())
        return outcome, newest


@dataclass(slots=True)
class FallbackJob:
    """Try the API first; when the server refuses unauthenticated API reads, use its RSS."""

    key: str
    kind: str
    url: str
    primary: Job
    fallback: Job

    async def run(self, ctx: Context, state: SourceState) -> Outcome:
        try:
            return await self.primary.run(ctx, state)
        except FetchError as exc:
            if exc.status not in _FALLBACK_STATUSES:
                raise
        outcome = await self.fallback.run(ctx, state)
        outcome.notes.append("API not open to anonymous reads; used RSS (no engagement counts)")
        return outcome


def account_job(handle: str, base: str, via: str, key: str) -> Job:
    """The job for ``@user@server`` (reached at ``base``): API, RSS, or API falling back to RSS."""
    user, server = handle.lstrip("@").split("@", 1)
    rss = FeedJob(key, "mastodon", f"{base}/@{user}.rss?limit={API_PAGE}", opt_out_check=True)
    api = MastodonApiJob(key, "mastodon", f"{base}/@{user}", server, base, account=user)
    return _choose(via, key, "mastodon", api, rss)


def hashtag_job(tag: str, server: str, base: str, via: str, key: str) -> Job:
    """The job for a hashtag on one server (reached at ``base``)."""
    rss = FeedJob(key, "hashtag", f"{base}/tags/{quote(tag)}.rss?limit={TAG_RSS_LIMIT}")
    api = MastodonApiJob(key, "hashtag", f"{base}/tags/{quote(tag)}", server, base, tag=tag)
    return _choose(via, key, "hashtag", api, rss)


def _choose(via: str, key: str, kind: str, api: MastodonApiJob, rss: FeedJob) -> Job:
    if via == "api":
        return api
    if via == "rss":
        return rss
    return FallbackJob(key, kind, rss.url, api, rss)
