"""The public archive: the sent editions (without any reader's links), the left-out posts, an Atom feed."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC
from html import escape as html_escape
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from ..clean import safe_url
from ..compose import edition_path, personalize, selection
from ..models import Edition
from .security import ARCHIVE_CSP
from .site import Section

_WEEK = re.compile(r"\d{4}-W\d{2}")
_SLUG = re.compile(r"[a-z0-9+-]{1,100}")
# what an edition says to the reader it was sent to, which a visitor of the archive is not
_REASON = re.compile(r'<span class="reader-reason"[^>]*>.*?</span>\s*', re.S)
_REASON_BEFORE = re.compile(r"You get this because you subscribed to [^<]*? for [^<]*?\.\s*")  # older editions
_READER_LINKS = re.compile(r'<p class="reader-links"[^>]*>.*?</p>', re.S)
_BODY = re.compile(r"<body[^>]*>", re.I)
_NAV_STYLE = (
    "max-width:632px; box-sizing:border-box; margin:0 auto; padding:14px 12px 0; font-family:-apple-system, BlinkMacSystemFont, "
    "'Segoe UI', Roboto, Helvetica, Arial, sans-serif; font-size:14px; line-height:2.2"
)
_LINK = "color:#0b6e69; font-weight:600; text-decoration:none; margin-right:14px"
_BUTTON = (
    "float:right; background-color:#0b6e69; color:#ffffff; padding:4px 16px; border-radius:6px; "
    "font-weight:700; text-decoration:none"
)


class ArchivePages(Section):
    """``/editions`` and below, ``/feed.atom``, the stylesheet and ``/healthz``: public, cacheable."""

    # -- the archive -------------------------------------------------------------------------------

    async def editions(self, request: Request) -> Response:
        weeks = await run_in_threadpool(self._weeks)
        return self.page("editions.html", private=False, weeks=weeks)

    def _weeks(self) -> list[dict[str, str]]:
        found = []
        for week in self.store.sent_weeks():
            main = self._main_edition(week)
            found.append({"week": week, "label": week, "subject": main.subject if main else ""})
        return found

    def _public(self, week: str) -> dict[str, Edition]:
        """A week's editions as the archive shows them: per topic selection, never a reader's own copy."""
        return {path: e for path, e in self.store.editions(week).items() if path.startswith("editions/")}

    def _sent(self, week: str) -> dict[str, Edition]:
        """A sent week's editions by path; 404 for anything else."""
        if not _WEEK.fullmatch(week) or week not in self.store.sent_weeks():
            raise HTTPException(404)
        return self._public(week)

    def _main_edition(self, week: str) -> Edition | None:
        stored = self._public(week)
        full = edition_path(week, selection(self.topic_names, self.topic_names))
        if full in stored:
            return stored[full]
        return next(iter(stored.values())) if len(stored) == 1 else None

    async def week(self, request: Request) -> Response:
        week = request.path_params["week"]
        stored = await run_in_threadpool(self._sent, week)
        main = await run_in_threadpool(self._main_edition, week)
        if main is not None:
            return self.archived(main, await run_in_threadpool(self._nav, week))
        items = [{"path": path, "topics": e.topics} for path, e in stored.items()]
        return self.page("week.html", private=False, week=week, selections=items)

    async def selection(self, request: Request) -> Response:
        week, slug = request.path_params["week"], request.path_params["slug"]
        if not _SLUG.fullmatch(slug):
            raise HTTPException(404)
        stored = await run_in_threadpool(self._sent, week)
        found = stored.get(f"editions/{week}/{slug}")
        if found is None:
            raise HTTPException(404)
        return self.archived(found, await run_in_threadpool(self._nav, week))

    def archive_copy(self, edition: Edition) -> Edition:
        """An edition as a visitor reads it: no reader's links, no "You get this because you subscribed",
        a Subscribe link where a reader's "Change your topics" was (and the general `/manage` page)."""
        manage = f"{self.base}/manage"
        copy = personalize(edition, unsubscribe_url=manage, preferences_url=manage, name="")
        invite = (
            f'<p><a href="{self.base}/" style="color:#3b4754; text-decoration:underline">Subscribe</a>'
            f' · Subscribed already? <a href="{manage}" style="color:#3b4754; text-decoration:underline">'
            "Change your topics or unsubscribe</a></p>"
        )
        html = _REASON_BEFORE.sub("", _REASON.sub("", copy.html))
        return replace(copy, html=_READER_LINKS.sub(lambda _: invite, html, count=1))

    def archived(self, stored: Edition, nav: str) -> Response:
        """The archive's page of an edition: the visitor's copy under ``nav``, a bar leading to the other
        editions and to the subscription page (`_nav`)."""
        headers = {"content-security-policy": ARCHIVE_CSP, "cache-control": "public, max-age=300"}
        html = self.archive_copy(stored).html
        return HTMLResponse(_BODY.sub(lambda m: m.group(0) + nav, html, count=1), headers=headers)

    def _nav(self, week: str) -> str:
        """The bar above an archived edition: the digest's home, every edition, the weeks before and after."""
        weeks = self.store.sent_weeks()  # newest first
        at = weeks.index(week) if week in weeks else -1
        older = weeks[at + 1] if 0 <= at < len(weeks) - 1 else ""
        newer = weeks[at - 1] if at > 0 else ""
        root, title = self.root, html_escape(self.settings.digest.title)
        links = [
            f'<a class="archive-link" href="{root}/" style="{_LINK}">{title}</a>',
            f'<a class="archive-link" href="{root}/editions" style="{_LINK}">All editions</a>',
        ]
        if older:
            links.append(
                f'<a class="archive-link" href="{root}/editions/{older}" rel="prev" style="{_LINK}">← {older}</a>'
            )
        if newer:
            links.append(
                f'<a class="archive-link" href="{root}/editions/{newer}" rel="next" style="{_LINK}">{newer} →</a>'
            )
        button = f'<a class="subscribe" href="{root}/" style="{_BUTTON}">Subscribe</a>'
        return f'\n<nav class="archive-nav" aria-label="Archive" style="{_NAV_STYLE}">{button}{"".join(links)}</nav>\n'

    async def left_out(self, request: Request) -> Response:
        week = request.path_params["week"]
        posts, topics = await run_in_threadpool(self._left_out, week)
        return self.page("left_out.html", private=False, week=week, posts=posts, topics=topics)

    def _left_out(self, week: str) -> tuple[list[dict[str, str]], list[str]]:
        stored = self._sent(week)
        if not stored:
            raise HTTPException(404)
        composed = min(e.created_at for e in stored.values() if e.created_at is not None)
        run = self.store.last_filter_run(at_or_before=composed)
        if run is None:
            return [], self.topic_names
        from ..pipeline import composer_from_run

        # the edition's own count (`compose.Counts.left_out`): one post seen through two feeds once,
        # and what a chat recap shows not at all
        composer = composer_from_run(self.settings, self.store, run, week=week, now=run.ran_at)
        zone = ZoneInfo(self.settings.digest.timezone)
        names = composer.names  # the edition cards' names: a feed's publication, one name per author
        posts = []
        for post in (story.post for story in composer.left_out):
            text = " ".join((post.title or post.text).split())
            author, via = names.author(post), names.via(post)
            posts.append(
                {
                    "author": author,
                    "via": "" if via == author else via,
                    "when": f"{post.published.astimezone(zone):%a %d %b, %H:%M}",
                    "text": text if len(text) <= 300 else text[:299] + "…",
                    "url": safe_url(post.url),
                }
            )
        return posts, list(run.topics)

    async def feed(self, request: Request) -> Response:
        entries = await run_in_threadpool(self._entries)
        updated = max((e["updated"] for e in entries), default="1970-01-01T00:00:00Z")
        body = self.env.get_template("web/feed.atom").render(
            title=self.settings.digest.title,
            base=self.base,
            feed_id=f"{self.base}/feed.atom",
            updated=updated,
            entries=entries,
        )
        headers = {"cache-control": "public, max-age=300"}
        return Response(body, media_type="application/atom+xml; charset=utf-8", headers=headers)

    def _entries(self) -> list[dict[str, str]]:
        entries = []
        for week in self.store.sent_weeks()[:20]:
            main = self._main_edition(week)
            if main is None:
                continue
            copy = self.archive_copy(main)
            entries.append(
                {
                    "subject": copy.subject,
                    "id": f"{self.base}/editions/{week}",
                    "url": f"{self.base}/editions/{week}",
                    "updated": f"{main.created_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" if main.created_at else "",
                    "html": _body_of(copy.html),
                }
            )
        return entries

    async def stylesheet(self, request: Request) -> Response:
        source = self.env.loader.get_source(self.env, "web/web.css")[0]  # type: ignore[union-attr]
        headers = {"cache-control": "public, max-age=3600"}
        return Response(source, media_type="text/css; charset=utf-8", headers=headers)

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok\n", headers={"cache-control": "no-store"})


def _body_of(document: str) -> str:
    """The inside of an HTML document's body (what a feed entry carries)."""
    match = re.search(r"<body[^>]*>(.*)</body>", document, flags=re.S | re.I)
    return match.group(1) if match else document
