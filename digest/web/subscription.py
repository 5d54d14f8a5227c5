"""The subscription pages: subscribe, confirm, choose topics, unsubscribe. A GET shows a page with a
button; only the button's POST (with its CSRF token, `security.Guard`) acts, and repeating it changes nothing.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .. import subscribers as subs
from ..tokens import make_token
from .security import CSRF_COOKIE, form_field, path_token, read_form
from .site import Section

log = logging.getLogger("digest.web")


class SubscriptionPages(Section):
    """``/``, ``/subscribe``, ``/confirm/{token}``, ``/preferences/{token}``, ``/unsubscribe/{token}``, ``/manage``."""

    # -- subscribe ---------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        nonce, new = self.guard.nonce(request)
        response = self.subscribe_form(nonce, email="", chosen=self.topic_names, status=200)
        return self.guard.with_cookie(response, nonce, new)

    def subscribe_form(
        self, nonce: str, *, email: str, chosen: list[str], status: int, error: str = "", field: str = ""
    ) -> Response:
        return self.page(
            "subscribe.html",
            status,
            private=False,
            csrf=self.guard.csrf(nonce, "subscribe"),
            email=email,
            chosen=chosen,
            topics=self.settings.topics,
            error=error,
            error_field=field,
        )

    async def subscribe(self, request: Request) -> Response:
        form = await read_form(request)
        self.guard.check_csrf(request, form, "subscribe")
        self.guard.limit("subscribe", request)
        raw = form_field(form, "email")
        chosen = [v for v in form.getlist("topics") if isinstance(v, str)]
        nonce = request.cookies[CSRF_COOKIE]
        try:
            address = subs.normalize_email(raw)
            subs.parse_topics(self.settings, chosen)
        except subs.InvalidInput as exc:
            keep = [c for c in chosen if c in self.topic_names]
            return self.subscribe_form(nonce, email=raw[:254], chosen=keep, status=400, error=str(exc), field=exc.field)
        self.guard.limit("subscribe", request, address)
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
        token = path_token(request)
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
        nonce, new = self.guard.nonce(request)
        response = self.page(
            "confirm.html", address=address, token=token, csrf=self.guard.csrf(nonce, "confirm", token)
        )
        return self.guard.with_cookie(response, nonce, new)

    async def confirm(self, request: Request) -> Response:
        token = path_token(request)
        form = await read_form(request)
        self.guard.check_csrf(request, form, "confirm", token)
        self.guard.limit("confirm", request)
        address = subs.address_of(self.settings, "confirm", token)
        self.guard.limit("confirm", request, address)
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
        token = path_token(request)
        recipient = await run_in_threadpool(subs.subscriber_for, self.settings, self.store, token)
        nonce, new = self.guard.nonce(request)
        response = self.preferences_form(nonce, token, recipient.email, recipient.status, recipient.topics)
        return self.guard.with_cookie(response, nonce, new)

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
            csrf=self.guard.csrf(nonce, "preferences", token),
            unsubscribe_token=unsubscribe,
            unsubscribe_csrf=self.guard.csrf(nonce, "unsubscribe", unsubscribe),
        )

    async def preferences(self, request: Request) -> Response:
        token = path_token(request)
        form = await read_form(request)
        self.guard.check_csrf(request, form, "preferences", token)
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
        token = path_token(request)
        address = subs.address_of(self.settings, "unsubscribe", token)
        nonce, new = self.guard.nonce(request)
        response = self.page(
            "unsubscribe.html", address=address, token=token, csrf=self.guard.csrf(nonce, "unsubscribe", token)
        )
        return self.guard.with_cookie(response, nonce, new)

    async def unsubscribe(self, request: Request) -> Response:
        token = path_token(request)
        form = await read_form(request)
        one_click = form.get("List-Unsubscribe") == "One-Click"
        if not one_click:
            self.guard.check_csrf(request, form, "unsubscribe", token)
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
