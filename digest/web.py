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
    GET  /editions                    the index of sent editions
    GET  /editions/{week}             a week's edition, as sent but without any reader's links
    GET  /editions/{week}/left-out    the posts the topic filter left out that week
    GET  /editions/{week}/{selection} one topic selection's edition (its `compose.edition_path`)
    GET  /feed.atom                   every sent edition as an Atom feed
    GET  /static/web.css              the pages' stylesheet
    GET  /healthz                     "ok", for a reverse proxy or a monitor

This is the only module that turns errors into HTTP responses (`_ERRORS`): bad input is a 400
page that says what to fix, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import clock
from . import subscribers as subs
from .addresses import limit_key
from .clean import safe_url
from .compose import Edition, edition_path, environment, personalize, selection
from .config import Settings
from .errors import DigestError
from .mail import MailError, Messenger
from .ratelimit import SlidingWindow, ip_key
from .store import Store
from .tokens import TokenError, make_token, read_token

__all__ = ["BODY_LIMIT", "CSRF_MAX_AGE", "create_app"]

log = logging.getLogger("digest.web")

BODY_LIMIT = 16 * 1024  # bytes of a request body; larger is refused (413) before any parsing
CSRF_MAX_AGE = 2 * 3600  # seconds a form stays good after its page was shown
CSRF_COOKIE = "digest_csrf"
MAX_TOKEN = 400  # characters of a link token; a real one is about 80
MAX_FIELDS = 40  # form fields; the subscribe form has one per topic plus two
HOUR = 3600.0
_WEEK = re.compile(r"\d{4}-W\d{2}")
_SLUG = re.compile(r"[a-z0-9+-]{1,100}")
_NONCE = re.compile(r"[0-9a-f]{32}")

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# The archived editions are emails, styled inline by nature: their own policy allows inline styles
# and remote images, and still no script, no form, no frame.
ARCHIVE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": PAGE_CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class Scheduler(Protocol):
    """What the app runs beside the pages while it serves (see `schedule.Scheduler`)."""

    async def run_forever(self) -> None: ...


# -- errors the pages raise, and how each becomes a response -------------------------------------


class CsrfError(DigestError):
    """A form's POST did not carry a valid token from the page that showed it."""


class RateLimited(DigestError):
    """Too many requests from one IP address, or for one email address."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadRequest(DigestError):
    """A request no page of ours would send (a malformed form, an absurd token)."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    heading: str
    advice: str


_ERRORS: list[tuple[type[BaseException], _Answer]] = [
    (subs.InvalidInput, _Answer(400, "Please check the form", "Go back, correct it and try again.")),
    (
        TokenError,
        _Answer(400, "This link does not work", "Use the link in your most recent email, or subscribe again."),
    ),
    (subs.NotSubscribed, _Answer(404, "Not subscribed", "")),
    (CsrfError, _Answer(403, "Please try again", "")),
    (RateLimited, _Answer(429, "Too many attempts", "")),
    (BadRequest, _Answer(400, "Bad request", "")),
    (MailError, _Answer(503, "We could not send the email", "Nothing is lost: please try again in a few minutes.")),
    (DigestError, _Answer(503, "Something went wrong on our side", "Please try again in a few minutes.")),
]


# -- middleware ------------------------------------------------------------------------------------


class SecurityHeaders:
    """Adds the security headers to every response that does not set its own (the archive sets its CSP)."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = dict(SECURITY_HEADERS)
        if hsts:
            self.headers["strict-transport-security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.decode("latin-1").lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in self.headers.items() if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Reads at most `BODY_LIMIT` bytes of a request body before the app sees any of it; more is a 413."""

    def __init__(self, app: ASGIApp, limit: int = BODY_LIMIT) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _too_large(send, self.limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class SlashRedirect:
    """``/editions/`` -> ``/editions``: a redirect built from ``public_url`` (a relative one without it),
    never from the request's Host header, which anyone can set. Starlette's own would use Host."""

    def __init__(self, app: ASGIApp, *, base: str, routes: list[Route]) -> None:
        self.app, self.base, self.routes = app, base.rstrip("/"), routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        bare = path.rstrip("/")
        if bare and bare != path and any(r.matches({**scope, "path": bare})[0] is Match.FULL for r in self.routes):
            query = scope.get("query_string", b"").decode("latin-1")
            location = f"{self.base}{quote(bare)}" + (f"?{query}" if query else "")
            await RedirectResponse(location, status_code=308)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _too_large(send: Send, limit: int) -> None:
    text = f"Request too large: at most {limit // 1024} KB.\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(text)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": text})


# -- the app ---------------------------------------------------------------------------------------


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
    pages = _Pages(settings, store, now, messenger)
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
        Route("/editions", pages.editions, methods=["GET"]),
        Route("/editions/{week}", pages.week, methods=["GET"]),
        Route("/editions/{week}/left-out", pages.left_out, methods=["GET"]),
        Route("/editions/{week}/{slug}", pages.selection, methods=["GET"]),
        Route("/feed.atom", pages.feed, methods=["GET"]),
        Route("/static/web.css", pages.stylesheet, methods=["GET"]),
        Route("/healthz", pages.health, methods=["GET"]),
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
        exception_handlers={HTTPException: pages.http_error, DigestError: pages.error, Exception: pages.crash},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # SlashRedirect does it, from public_url
    app.add_middleware(SlashRedirect, base=settings.subscription.public_url or "", routes=routes)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, hsts=(settings.subscription.public_url or "").startswith("https://"))
    return app


class _Pages:
    """The route handlers, sharing the settings, the store, the clock and the rate limits."""

    def __init__(
        self, settings: Settings, store: Store, now: Callable[[], datetime], messenger: Callable[[], Messenger] | None
    ) -> None:
        self.settings, self.store, self.now, self.messenger = settings, store, now, messenger
        self.secret = subs.secret_of(settings)
        public = urlsplit(settings.subscription.public_url or "")
        self.base = (settings.subscription.public_url or "").rstrip("/")
        self.root = public.path.rstrip("/")
        self.origin = f"{public.scheme}://{public.netloc}"
        self.secure = public.scheme == "https"
        self.env = environment(settings.templates_dir)
        self.topic_names = [t.name for t in settings.topics]
        sub = settings.subscription
        self.per_ip = {name: SlidingWindow(sub.limit_per_ip, HOUR) for name in ("subscribe", "confirm")}
        self.per_address = {name: SlidingWindow(sub.limit_per_address, HOUR) for name in ("subscribe", "confirm")}

    # -- rendering --------------------------------------------------------------------------------

    def page(self, name: str, code: int = 200, *, private: bool = True, **context: Any) -> HTMLResponse:
        base = {
            "title": self.settings.digest.title,
            "root": self.root,
            "robots": "noindex, nofollow" if private else "index, follow",
            "schedule": subs.schedule_label(self.settings),
        }
        try:
            body = self.env.get_template(f"web/{name}").render({**base, **context})
        except jinja2.TemplateError as exc:
            raise DigestError(f"web/{name}: {exc}") from exc
        cache = "no-store" if private else "public, max-age=300"
        return HTMLResponse(body, status_code=code, headers={"cache-control": cache})

    def message(
        self, heading: str, *paragraphs: str, status: int = 200, link: tuple[str, str] | None = None
    ) -> Response:
        url, text = link or ("", "")
        return self.page(
            "message.html",
            status,
            heading=heading,
            paragraphs=[p for p in paragraphs if p],
            link_url=url,
            link_text=text,
        )

    # -- CSRF: a signed token per form, bound to a cookie and to the link's token ----------------------

    def nonce(self, request: Request) -> tuple[str, bool]:
        """The browser's CSRF cookie value, or a new one (True: set the cookie)."""
        have = request.cookies.get(CSRF_COOKIE, "")
        return (have, False) if _NONCE.fullmatch(have) else (secrets.token_hex(16), True)

    def csrf(self, nonce: str, form: str, bound: str = "") -> str:
        return make_token(self.secret, "csrf", f"{form}|{nonce}|{_fingerprint(bound)}")

    def with_cookie(self, response: Response, nonce: str, new: bool) -> Response:
        if new:
            response.set_cookie(
                CSRF_COOKIE, nonce, path=self.root or "/", httponly=True, samesite="strict", secure=self.secure
            )
        return response

    def check_csrf(self, request: Request, form: FormData, name: str, bound: str = "") -> None:
        origin = request.headers.get("origin")
        if origin and origin != "null" and origin not in (self.origin, _own_origin(request)):
            raise CsrfError("This form was sent from another site, so it was not accepted.")
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise CsrfError("This form was sent from another site, so it was not accepted.")
        token = form.get("csrf")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
            raise CsrfError("This form is missing its security token. Reload the page and try again.")
        try:
            payload = read_token(self.secret, "csrf", token, max_age=CSRF_MAX_AGE)
        except TokenError as exc:
            if "expired" in str(exc):
                raise CsrfError("This form is more than two hours old. Reload the page and try again.") from None
            raise CsrfError("This form could not be verified. Reload the page and try again.") from None
        kind, _, rest = payload.partition("|")
        nonce, _, fingerprint = rest.partition("|")
        if kind != name or not hmac.compare_digest(fingerprint, _fingerprint(bound)):
            raise CsrfError("This form could not be verified. Reload the page and try again.")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie:
            raise CsrfError(
                "Your browser did not send back this site's cookie. Allow cookies for this site, "
                "reload the page and try again."
            )
        if not hmac.compare_digest(cookie, nonce):
            raise CsrfError("This form could not be verified. Reload the page and try again.")

    def limit(self, kind: str, request: Request, address: str | None = None) -> None:
        """Count one request from the client's IP address (or, given one, for an email address)."""
        client = ip_key(request.client.host) if request.client else "unknown"
        if address is not None:  # counted per mailbox: victim+1@ and v.i.c.t.i.m@gmail.com are victim@
            window, key = self.per_address[kind], limit_key(address)
        else:
            window, key = self.per_ip[kind], client
        wait = window.hit(key)
        if wait is not None:
            log.warning("rate limit: %s from %s (%s)", kind, client, "address" if address is not None else "IP")
            minutes = max(1, round(wait / 60))
            raise RateLimited(f"Please wait about {minutes} minute{'s' if minutes != 1 else ''} and try again.", wait)

    # -- subscribe ---------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        nonce, new = self.nonce(request)
        response = self.subscribe_form(nonce, email="", chosen=self.topic_names, status=200)
        return self.with_cookie(response, nonce, new)

    def subscribe_form(
        self, nonce: str, *, email: str, chosen: list[str], status: int, error: str = "", field: str = ""
    ) -> Response:
        return self.page(
            "subscribe.html",
            status,
            private=False,
            csrf=self.csrf(nonce, "subscribe"),
            email=email,
            chosen=chosen,
            topics=self.settings.topics,
            error=error,
            error_field=field,
        )

    async def subscribe(self, request: Request) -> Response:
        form = await _form(request)
        self.check_csrf(request, form, "subscribe")
        self.limit("subscribe", request)
        raw = _field(form, "email")
        chosen = [v for v in form.getlist("topics") if isinstance(v, str)]
        nonce = request.cookies[CSRF_COOKIE]
        try:
            address = subs.normalize_email(raw)
            subs.parse_topics(self.settings, chosen)
        except subs.InvalidInput as exc:
            field = "topics" if "topic" in str(exc) else "email"
            keep = [c for c in chosen if c in self.topic_names]
            return self.subscribe_form(nonce, email=raw[:254], chosen=keep, status=400, error=str(exc), field=field)
        self.limit("subscribe", request, address)
        await run_in_threadpool(self._subscribe, address, chosen)
        # The same page whatever happened: the email says "confirm" or "you are already subscribed".
        return self.message(
            "Check your inbox",
            f"We sent an email to {address}. Open the link in it to finish.",
            "It can take a few minutes to arrive; look in the spam folder too. "
            "If it does not come, you can try again in a little while.",
        )

    def _subscribe(self, address: str, chosen: list[str]) -> None:
        messenger = self.messenger() if self.messenger else None
        kind = subs.subscribe(self.settings, self.store, address, chosen, now=self.now(), messenger=messenger)
        log.info("subscribe: %s email sent", kind)

    # -- confirm -----------------------------------------------------------------------------------

    async def confirm_page(self, request: Request) -> Response:
        token = _token(request)
        address = subs.address_of(self.settings, "confirm", token)
        found = await run_in_threadpool(self.store.subscriber, address)
        if found is None:
            raise subs.NotSubscribed(
                "There is no subscription waiting for this link: it was cancelled, or the address unsubscribed. "
                "You can subscribe again."
            )
        if found.status == "confirmed":
            return self.message(
                "You are already subscribed", f"{address} already receives {self.settings.digest.title}."
            )
        nonce, new = self.nonce(request)
        response = self.page("confirm.html", address=address, token=token, csrf=self.csrf(nonce, "confirm", token))
        return self.with_cookie(response, nonce, new)

    async def confirm(self, request: Request) -> Response:
        token = _token(request)
        form = await _form(request)
        self.check_csrf(request, form, "confirm", token)
        self.limit("confirm", request)
        address = subs.address_of(self.settings, "confirm", token)
        self.limit("confirm", request, address)
        recipient = await run_in_threadpool(lambda: subs.confirm(self.settings, self.store, token, now=self.now()))
        log.info("confirm: a subscription is confirmed")
        preferences = make_token(self.secret, "preferences", recipient.email)
        return self.message(
            "You are subscribed",
            f"{self.settings.digest.title} comes to {recipient.email} {subs.schedule_label(self.settings)}.",
            "Every email has a link to change your topics and to unsubscribe.",
            link=(f"{self.root}/preferences/{preferences}", "Choose your topics"),
        )

    # -- preferences ---------------------------------------------------------------------------------

    async def preferences_page(self, request: Request) -> Response:
        token = _token(request)
        recipient = await run_in_threadpool(subs.subscriber_for, self.settings, self.store, token)
        nonce, new = self.nonce(request)
        response = self.preferences_form(nonce, token, recipient.email, recipient.status, recipient.topics)
        return self.with_cookie(response, nonce, new)

    def preferences_form(
        self,
        nonce: str,
        token: str,
        address: str,
        status: str,
        topics: tuple[str, ...] | list[str] | None,
        *,
        saved: bool = False,
        error: str = "",
        code: int = 200,
    ) -> Response:
        unsubscribe = make_token(self.secret, "unsubscribe", address)
        chosen = list(topics) if topics is not None else self.topic_names
        return self.page(
            "preferences.html",
            code,
            address=address,
            status=status,
            token=token,
            topics=self.settings.topics,
            chosen=[t for t in self.topic_names if t in chosen],
            saved=saved,
            error=error,
            csrf=self.csrf(nonce, "preferences", token),
            unsubscribe_token=unsubscribe,
            unsubscribe_csrf=self.csrf(nonce, "unsubscribe", unsubscribe),
        )

    async def preferences(self, request: Request) -> Response:
        token = _token(request)
        form = await _form(request)
        self.check_csrf(request, form, "preferences", token)
        chosen = [v for v in form.getlist("topics") if isinstance(v, str)]
        nonce = request.cookies[CSRF_COOKIE]
        try:
            changed = await run_in_threadpool(
                lambda: subs.update_topics(self.settings, self.store, token, chosen, now=self.now())
            )
        except subs.InvalidInput as exc:
            found = await run_in_threadpool(subs.subscriber_for, self.settings, self.store, token)
            keep = [c for c in chosen if c in self.topic_names]
            return self.preferences_form(nonce, token, found.email, found.status, keep, error=str(exc), code=400)
        log.info("preferences: topics changed")
        return self.preferences_form(nonce, token, changed.email, changed.status, changed.topics, saved=True)

    # -- unsubscribe ---------------------------------------------------------------------------------

    async def unsubscribe_page(self, request: Request) -> Response:
        token = _token(request)
        address = subs.address_of(self.settings, "unsubscribe", token)
        nonce, new = self.nonce(request)
        response = self.page(
            "unsubscribe.html", address=address, token=token, csrf=self.csrf(nonce, "unsubscribe", token)
        )
        return self.with_cookie(response, nonce, new)

    async def unsubscribe(self, request: Request) -> Response:
        token = _token(request)
        form = await _form(request)
        one_click = form.get("List-Unsubscribe") == "One-Click"
        if not one_click:
            self.check_csrf(request, form, "unsubscribe", token)
        await run_in_threadpool(lambda: subs.unsubscribe(self.settings, self.store, token, now=self.now()))
        log.info("unsubscribe: an address is suppressed (%s)", "one-click" if one_click else "page")
        if one_click:  # RFC 8058: a mail client's POST, no page
            return PlainTextResponse("Unsubscribed.\n", headers={"cache-control": "no-store"})
        return self.message(
            "You are unsubscribed",
            f"No more email from {self.settings.digest.title} goes to this address.",
            "We kept no copy of your address, only a scrambled record that it asked to stop.",
            link=(f"{self.root}/", "Subscribe again"),
        )

    async def manage(self, request: Request) -> Response:
        return self.message(
            "Change your topics or unsubscribe",
            "Use the links at the bottom of any email you received from us: each is personal to you, "
            "and no password is needed.",
            link=(f"{self.root}/", "Subscribe"),
        )

    # -- the archive -------------------------------------------------------------------------------

    async def editions(self, request: Request) -> Response:
        weeks = await run_in_threadpool(self._weeks)
        return self.page("editions.html", private=False, weeks=weeks)

    def _weeks(self) -> list[dict[str, str]]:
        found = []
        for week in self.store.sent_weeks():
            main = self._main_edition(week)
            found.append({"week": week, "label": week, "subject": main["subject"] if main else ""})
        return found

    def _sent(self, week: str) -> dict[str, dict[str, Any]]:
        """A sent week's editions by path; 404 for anything else."""
        if not _WEEK.fullmatch(week) or week not in self.store.sent_weeks():
            raise HTTPException(404)
        return self.store.editions(week)

    def _main_edition(self, week: str) -> dict[str, Any] | None:
        stored = self.store.editions(week)
        full = edition_path(week, selection(self.topic_names, self.topic_names))
        if full in stored:
            return stored[full]
        return next(iter(stored.values())) if len(stored) == 1 else None

    async def week(self, request: Request) -> Response:
        week = request.path_params["week"]
        stored = await run_in_threadpool(self._sent, week)
        main = await run_in_threadpool(self._main_edition, week)
        if main is not None:
            return self.archived(main)
        items = [{"path": path, "topics": e["topics"]} for path, e in stored.items()]
        return self.page("week.html", private=False, week=week, selections=items)

    async def selection(self, request: Request) -> Response:
        week, slug = request.path_params["week"], request.path_params["slug"]
        if not _SLUG.fullmatch(slug):
            raise HTTPException(404)
        stored = await run_in_threadpool(self._sent, week)
        found = stored.get(f"editions/{week}/{slug}")
        if found is None:
            raise HTTPException(404)
        return self.archived(found)

    def archive_copy(self, stored: dict[str, Any]) -> Edition:
        """An edition as sent, with the reader's links pointing at the general `/manage` page."""
        edition = Edition(
            stored["week"], stored["subject"], stored["html"], stored["text"], tuple(stored["topics"]), stored["path"]
        )
        manage = f"{self.base}/manage"
        return personalize(edition, unsubscribe_url=manage, preferences_url=manage, name="")

    def archived(self, stored: dict[str, Any]) -> Response:
        headers = {"content-security-policy": ARCHIVE_CSP, "cache-control": "public, max-age=300"}
        return HTMLResponse(self.archive_copy(stored).html, headers=headers)

    async def left_out(self, request: Request) -> Response:
        week = request.path_params["week"]
        posts, topics = await run_in_threadpool(self._left_out, week)
        return self.page("left_out.html", private=False, week=week, posts=posts, topics=topics)

    def _left_out(self, week: str) -> tuple[list[dict[str, str]], list[str]]:
        stored = self._sent(week)
        if not stored:
            raise HTTPException(404)
        composed = min(e["created_at"] for e in stored.values())
        run = self.store.last_filter_run(at_or_before=composed)
        if run is None:
            return [], self.topic_names
        from .pipeline import composer_from_run

        # the edition's own count (`compose.Counts.left_out`): one post seen through two feeds once,
        # and what a chat recap shows not at all
        composer = composer_from_run(self.settings, self.store, run, week=week, now=run.ran_at)
        zone = ZoneInfo(self.settings.digest.timezone)
        posts = []
        for post in (story.post for story in composer.left_out):
            text = " ".join((post.title or post.text).split())
            posts.append(
                {
                    "author": post.author.name or post.author.handle or urlsplit(post.url).hostname or "",
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
                    "updated": main["created_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
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

    # -- errors: the one place they become responses ------------------------------------------------

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headings = {404: "Page not found", 405: "Not allowed", 400: "Bad request"}
        advice = {
            404: "There is nothing at this address.",
            405: "This address does not take that kind of request.",
        }.get(exc.status_code, str(exc.detail))
        response = self.message(
            headings.get(exc.status_code, "Request not accepted"),
            advice,
            status=exc.status_code,
            link=(f"{self.root}/", f"Go to {self.settings.digest.title}"),
        )
        response.headers.update(exc.headers or {})
        return response

    async def error(self, request: Request, exc: Exception) -> Response:
        answer = next(a for kind, a in _ERRORS if isinstance(exc, kind))
        if answer.status >= 500:
            log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        message = _sentence(str(exc)) if answer.status < 500 else ""
        response = self.message(
            answer.heading,
            message,
            answer.advice,
            status=answer.status,
            link=(f"{self.root}/", f"Go to {self.settings.digest.title}"),
        )
        if isinstance(exc, RateLimited):
            response.headers["retry-after"] = str(int(exc.retry_after) + 1)
        elif answer.status == 503:
            response.headers["retry-after"] = "300"
        return response

    async def crash(self, request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        body = (
            "<!DOCTYPE html><title>Error</title><h1>Something went wrong on our side</h1><p>Please try again later.</p>"
        )
        return HTMLResponse(body, status_code=500, headers={k: v for k, v in SECURITY_HEADERS.items()})


# -- helpers ---------------------------------------------------------------------------------------


async def _form(request: Request) -> FormData:
    """The POSTed form: urlencoded or multipart, no files, a bounded number of fields."""
    try:
        return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=BODY_LIMIT)
    except HTTPException as exc:
        raise BadRequest(f"The form could not be read: {exc.detail}") from None
    except (ValueError, UnicodeDecodeError, AssertionError) as exc:
        raise BadRequest(f"The form could not be read ({type(exc).__name__}).") from None


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _token(request: Request) -> str:
    token = request.path_params["token"]
    if len(token) > MAX_TOKEN:
        raise TokenError("this link is not valid")
    return token


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]) if text else text


def _body_of(document: str) -> str:
    """The inside of an HTML document's body (what a feed entry carries)."""
    match = re.search(r"<body[^>]*>(.*)</body>", document, flags=re.S | re.I)
    return match.group(1) if match else document
