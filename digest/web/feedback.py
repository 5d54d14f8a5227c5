"""The feedback pages behind a card's "Not for me" and "More like this" links: the GET only shows the post
and a button (mail scanners open every link); the button's POST records the signal, or undoes it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import subscribers as subs
from ..compose import Names
from ..feedback import KINDS, Pressed, Signal, read_link, topic_ref
from ..models import Post
from ..pipeline import publication_names
from ..rank import account_key
from ..tokens import TokenError
from .security import CSRF_COOKIE, form_field, path_token, read_form
from .site import Section

log = logging.getLogger("digest.web")

_WORDING = {
    "less": {
        "question": "Leave posts like this one out of your editions: the same account, or much the same words?",
        "button": "Show me fewer like this",
        "effect": "Done: from your next edition on, posts like this one are left out of yours. Other readers' "
        "editions do not change.",
    },
    "more": {
        "question": "Put posts like this one at the top of their section in your editions?",
        "button": "Show me more like this",
        "effect": "Done: from your next edition on, posts like this one come first in their section of yours.",
    },
}


@dataclass(frozen=True, slots=True)
class _Link:
    pressed: Pressed
    topic: str
    post: Post
    byline: str  # as the post's card names it: the author, and the publication beside them


class FeedbackPages(Section):
    """``/feedback/{token}``: one reader, one post, one topic, one purpose (`feedback.read_link`)."""

    def _link(self, token: str) -> _Link:
        pressed = read_link(self.secret, token)
        topic = next((t for t in self.topic_names if topic_ref(t) == pressed.ref), None)
        post = self.store.post(pressed.post_id)
        if topic is None or post is None:
            raise TokenError("this feedback link is for a topic or a post that is no longer here")
        if self.store.subscriber(pressed.address) is None:
            raise subs.NotSubscribed("This address is not subscribed any more, so there is nothing to adjust.")
        names = Names.of([post], publication_names(self.settings, self.store))
        author, via = names.author(post), names.via(post)
        return _Link(pressed, topic, post, author if via == author else f"{author} · {via}")

    def _pressed(self, link: _Link) -> bool:
        mine = self.store.signals(email=link.pressed.address, post_id=link.post.id)
        return any(s.topic == link.topic and s.kind == link.pressed.kind for s in mine)

    async def show(self, request: Request) -> Response:
        token = path_token(request)
        link = await run_in_threadpool(self._link, token)
        pressed = await run_in_threadpool(self._pressed, link)
        nonce, new = self.guard.nonce(request)
        return self.guard.with_cookie(self._page(link, token, nonce, pressed), nonce, new)

    async def press(self, request: Request) -> Response:
        token = path_token(request)
        form = await read_form(request)
        self.guard.check_csrf(request, form, "feedback", token)
        link = await run_in_threadpool(self._link, token)
        undo = form_field(form, "action") == "undo"
        if undo:
            await run_in_threadpool(self.store.undo_signal, link.pressed.address, link.post.id, link.topic)
        else:
            signal = Signal(
                link.pressed.address,
                link.post.id,
                link.topic,
                link.pressed.kind,
                link.post.document(),
                account_key(link.post),
                self.now(),
            )
            await run_in_threadpool(self.store.record_signal, signal)
        log.info("feedback: a signal is %s", "undone" if undo else "recorded")
        notice = "Undone: your editions go back to the topic's usual choice." if undo else ""
        return self._page(link, token, request.cookies[CSRF_COOKIE], not undo, notice=notice)

    def _page(self, link: _Link, token: str, nonce: str, pressed: bool, *, notice: str = "") -> Response:
        post, kind = link.post, link.pressed.kind
        text = " ".join((post.title or post.text).split())
        zone = ZoneInfo(self.settings.digest.timezone)
        return self.page(
            "feedback.html",
            label=KINDS[kind],
            topic=link.topic,
            author=link.byline,
            when=f"{post.published.astimezone(zone):%a %d %b}",
            excerpt=text if len(text) <= 400 else text[:399] + "…",
            pressed=pressed,
            notice=notice,
            token=token,
            csrf=self.guard.csrf(nonce, "feedback", token),
            question=_WORDING[kind]["question"],
            button=_WORDING[kind]["button"],
            effect=_WORDING[kind]["effect"],
        )
