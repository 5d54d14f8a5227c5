"""What every page of the web app shares: the settings, the store, the clock, the renderer, and the one
place errors become responses (`ERRORS`): bad input is a 400 page that says what to fix, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .. import subscribers as subs
from ..compose import environment
from ..config import Settings
from ..errors import BadRequest, CsrfError, DigestError, RateLimited
from ..mail import MailError, Messenger
from ..store import Store
from ..tokens import TokenError
from .security import SECURITY_HEADERS, Guard

log = logging.getLogger("digest.web")


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    heading: str
    advice: str


ERRORS: list[tuple[type[BaseException], _Answer]] = [
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


class Site:
    """The state the pages share (settings, store, clock, messenger, CSRF guard) and how a page is rendered."""

    def __init__(
        self, settings: Settings, store: Store, now: Callable[[], datetime], messenger: Callable[[], Messenger] | None
    ) -> None:
        self.settings, self.store, self.now, self.messenger = settings, store, now, messenger
        self.secret = subs.secret_of(settings)
        self.guard = Guard(settings, self.secret)
        self.base = (settings.subscription.public_url or "").rstrip("/")
        self.root = self.guard.root
        self.env = environment(settings.templates_dir)
        self.topic_names = [t.name for t in settings.topics]

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
        answer = next(a for kind, a in ERRORS if isinstance(exc, kind))
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


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]) if text else text


class Section:
    """A group of pages (subscription, archive, feedback): the site's state read as its own."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.settings, self.store, self.now, self.guard = site.settings, site.store, site.now, site.guard
        self.root, self.base, self.secret, self.topic_names = site.root, site.base, site.secret, site.topic_names
        self.env, self.page, self.message, self.messenger = site.env, site.page, site.message, site.messenger
