"""The subscription app in-process for tests: a real store, a recording messenger, an httpx client over
the ASGI transport that keeps cookies like a browser, and helpers to read the forms a page carries."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
from helpers import NOW, settings_from

from digest.config import Settings
from digest.store import Store
from digest.web import create_app

PUBLIC = "https://digest.example.org"
SECRET = "web-test-secret-0123456789-abcdefghij"
CONFIG = f"""
[digest]
title = "Health IT weekly"

[subscription]
public_url = "{PUBLIC}"
secret = "${{DIGEST_SECRET}}"
limit_per_ip = 50
limit_per_address = 5

[mail]
from = "Health IT Weekly <digest@hit.example>"

[[topics]]
name = "Interoperability"
description = "Exchanging health data between systems: HL7, FHIR, APIs."
keywords = ["FHIR", "HL7", "interoperability", "API"]

[[topics]]
name = "Health IT"
description = "Electronic health records and clinical systems."
keywords = ["EHR", "EMR", "electronic health record", "Epic"]
"""


class RecordingMessenger:
    """A fake `Messenger` that keeps every message it is handed (the SMTP path has its own tests)."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[tuple[str, EmailMessage]] = []

    def push(self, sender: str, recipient: str, message: bytes, commit: Callable[[], None]) -> str:
        commit()
        self.sent.append((recipient, message_from_bytes(message, policy=policy.default)))  # type: ignore[arg-type]
        return "250 kept"

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def to(self, address: str) -> list[EmailMessage]:
        return [m for r, m in self.sent if r == address]


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    """One app over one store; `client` makes a browser-like client from an IP address."""

    settings: Settings
    store: Store
    mail: RecordingMessenger
    clock: Clock
    app: Any
    clients: list[Client] = field(default_factory=list)

    def client(self, ip: str = "203.0.113.7") -> Client:
        made = Client(self.app, ip)
        self.clients.append(made)
        return made

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.store.close()


def make_site(tmp_path: Path, config: str = CONFIG) -> Site:
    settings = settings_from(tmp_path, config)
    store = Store.open(settings.database_url)
    mail, clock = RecordingMessenger(), Clock()
    app = create_app(settings, store, now=clock, messenger=lambda: mail)
    return Site(settings, store, mail, clock, app)


class Client:
    """A sync face on an `httpx.AsyncClient` with the ASGI transport; cookies are kept across requests."""

    def __init__(self, app: Any, ip: str) -> None:
        self.loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=app, client=(ip, 50000))
        self.http = httpx.AsyncClient(transport=transport, base_url=PUBLIC)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.close()

    # -- what a person does with a page --------------------------------------------------------

    def submit(self, page: httpx.Response, index: int = 0, **fields: Any) -> httpx.Response:
        """Send a page's ``index``-th form back with its hidden fields and ``fields`` filled in."""
        form = forms(page.text)[index]
        data = {**form["hidden"], **fields}
        return self.post(form["action"], data=data)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.labels: set[str] = set()
        self.inputs: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", ""), "hidden": {}})
        elif tag == "input":
            self.inputs.append(a)
            if a.get("type") == "hidden" and self.forms:
                self.forms[-1]["hidden"][a["name"]] = a.get("value", "")
        elif tag == "label" and a.get("for"):
            self.labels.add(a["for"])


def forms(html: str) -> list[dict[str, Any]]:
    """Each form's action, method and hidden fields, in page order."""
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def inputs_and_labels(html: str) -> tuple[list[dict[str, str]], set[str]]:
    parser = _Forms()
    parser.feed(html)
    return parser.inputs, parser.labels


def link_in(message: EmailMessage, path: str) -> str:
    """The first ``{PUBLIC}/{path}/...`` link in a message's plain-text part, as a path."""
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(rf"{re.escape(PUBLIC)}(/{path}/[A-Za-z0-9_.\-]+)", text)
    assert match, text
    return match.group(1)
