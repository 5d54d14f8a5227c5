"""The web app's defences: security headers, a bounded body, CSRF tokens bound to a cookie and a link, rate limits.

Every form's POST must carry a CSRF token that its page issued, bound to the cookie the page set and
to the link's own token, from a page of this site (`Guard.check_csrf`); mail scanners that open
links and submit forms therefore confirm, unsubscribe or press nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from urllib.parse import quote, urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..addresses import limit_key
from ..config import Settings
from ..errors import BadRequest, CsrfError, RateLimited
from ..ratelimit import SlidingWindow, ip_key
from ..tokens import TokenError, make_token, read_token

log = logging.getLogger("digest.web")

BODY_LIMIT = 16 * 1024  # bytes of a request body; larger is refused (413) before any parsing
CSRF_MAX_AGE = 2 * 3600  # seconds a form stays good after its page was shown
CSRF_COOKIE = "digest_csrf"
MAX_TOKEN = 400  # characters of a link token; a real one is about 80
MAX_FIELDS = 40  # form fields; the subscribe form has one per topic plus two
HOUR = 3600.0
_NONCE = re.compile(r"[0-9a-f]{32}")

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

# -- errors the pages raise ------------------------------------------------------------------------


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


# -- CSRF and rate limits --------------------------------------------------------------------------


class Guard:
    """CSRF tokens (a signed token per form, bound to a cookie and to the link's token) and rate limits."""

    def __init__(self, settings: Settings, secret: str) -> None:
        self.secret = secret
        public = urlsplit(settings.subscription.public_url or "")
        self.root = public.path.rstrip("/")
        self.origin = f"{public.scheme}://{public.netloc}"
        self.secure = public.scheme == "https"
        sub = settings.subscription
        self.per_ip = {name: SlidingWindow(sub.limit_per_ip, HOUR) for name in ("subscribe", "confirm")}
        self.per_address = {name: SlidingWindow(sub.limit_per_address, HOUR) for name in ("subscribe", "confirm")}

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
            if exc.expired:
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


# -- reading a request -----------------------------------------------------------------------------


async def read_form(request: Request) -> FormData:
    """The POSTed form: urlencoded or multipart, no files, a bounded number of fields."""
    try:
        return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=BODY_LIMIT)
    except HTTPException as exc:
        raise BadRequest(f"The form could not be read: {exc.detail}") from None
    except (ValueError, UnicodeDecodeError, AssertionError) as exc:
        raise BadRequest(f"The form could not be read ({type(exc).__name__}).") from None


def form_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def path_token(request: Request) -> str:
    token: str = request.path_params["token"]
    if len(token) > MAX_TOKEN:
        raise TokenError("this link is not valid")
    return token


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"
