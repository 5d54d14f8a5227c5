"""The subscription pages and the public archive: a small Starlette app that ``digest serve`` runs.

A GET only shows a page; a POST acts. Mail scanners (Safe Links and the like) open every link in
an email and some submit forms, so a link never confirms or unsubscribes by itself: its page has a
button whose POST must carry a CSRF token that the page issued, bound to a cookie the page set and to
the link's own token. Repeating a confirmation or an unsubscription changes nothing.

Routes::

    GET  /                            the subscribe form
    POST /subscribe                   subscribe; the same answer whether or not the address is known
    GET  /confirm/{token}             a page with a "Confirm" button
    POST /confirm/{token}             confirm the subscription
    GET  /preferences/{token}         change topics, or unsubscribe
    POST /preferences/{token}         save the topics
    GET  /unsubscribe/{token}         a page with an "Unsubscribe" button
    POST /unsubscribe/{token}         unsubscribe (also RFC 8058 one-click: List-Unsubscribe=One-Click)
    GET  /manage                      how to change topics or unsubscribe (the archive's footer links here)
    GET  /feedback/{token}            a card's "Not for me" / "More like this": the post and a button
    POST /feedback/{token}            record that reader's signal (or, with action=undo, take it back)
    GET  /editions                    the index of sent editions
    GET  /editions/{week}             a week's edition, as sent but without any reader's links
    GET  /editions/{week}/left-out    the posts the topic filter left out that week
    GET  /editions/{week}/{selection} one topic selection's edition (its `compose.edition_path`)
    GET  /feed.atom                   every sent edition as an Atom feed
    GET  /static/web.css              the pages' stylesheet
    GET  /healthz                     "ok", for a reverse proxy or a monitor

Modules: `security` (headers, body limit, CSRF, rate limits), `site` (shared state, rendering, and the
one place errors become responses), `subscription` (the reader's pages), `feedback` (a card's links), `archive`
(the public pages).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from .. import clock
from ..config import Settings
from ..errors import BadRequest, CsrfError, DigestError, RateLimited
from ..mail import Messenger
from ..store import Store
from .archive import ArchivePages
from .feedback import FeedbackPages
from .security import (
    ARCHIVE_CSP,
    BODY_LIMIT,
    CSRF_MAX_AGE,
    PAGE_CSP,
    BodyLimit,
    SecurityHeaders,
    SlashRedirect,
)
from .site import Site
from .subscription import SubscriptionPages

__all__ = [
    "ARCHIVE_CSP",
    "BODY_LIMIT",
    "CSRF_MAX_AGE",
    "PAGE_CSP",
    "BadRequest",
    "CsrfError",
    "RateLimited",
    "SlashRedirect",
    "create_app",
]


class Scheduler(Protocol):
    """What the app runs beside the pages while it serves (see `schedule.Scheduler`)."""

    async def run_forever(self) -> None: ...


def utc_now() -> datetime:
    return clock.now()


def create_app(
    settings: Settings,
    store: Store,
    *,
    now: Callable[[], datetime] = utc_now,
    messenger: Callable[[], Messenger] | None = None,
    scheduler: Scheduler | None = None,
) -> Starlette:
    """The ASGI app for ``digest serve``. ``now`` is the clock, ``messenger`` makes the messenger for
    confirmation emails (default: `[mail]`), ``scheduler`` runs beside the pages while the app serves."""
    site = Site(settings, store, now, messenger)
    pages, archive, feedback = SubscriptionPages(site), ArchivePages(site), FeedbackPages(site)
    routes = [
        Route("/", pages.home, methods=["GET"]),
        Route("/subscribe", pages.subscribe, methods=["POST"]),
        Route("/confirm/{token}", pages.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", pages.confirm, methods=["POST"]),
        Route("/preferences/{token}", pages.preferences_page, methods=["GET"]),
        Route("/preferences/{token}", pages.preferences, methods=["POST"]),
        Route("/unsubscribe/{token}", pages.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", pages.unsubscribe, methods=["POST"]),
        Route("/manage", pages.manage, methods=["GET"]),
        Route("/feedback/{token}", feedback.show, methods=["GET"]),
        Route("/feedback/{token}", feedback.press, methods=["POST"]),
        Route("/editions", archive.editions, methods=["GET"]),
        Route("/editions/{week}", archive.week, methods=["GET"]),
        Route("/editions/{week}/left-out", archive.left_out, methods=["GET"]),
        Route("/editions/{week}/{slug}", archive.selection, methods=["GET"]),
        Route("/feed.atom", archive.feed, methods=["GET"]),
        Route("/static/web.css", archive.stylesheet, methods=["GET"]),
        Route("/healthz", archive.health, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(scheduler.run_forever()) if scheduler is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: site.http_error, DigestError: site.error, Exception: site.crash},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # SlashRedirect does it, from public_url
    app.add_middleware(SlashRedirect, base=settings.subscription.public_url or "", routes=routes)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, hsts=(settings.subscription.public_url or "").startswith("https://"))
    return app
