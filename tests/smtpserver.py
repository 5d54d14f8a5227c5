"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), with the misbehaviours the mailer must survive.

    sink = SmtpSink(reject={"gone@example.org"}, flaky=0.2, drop=0.1)
    with sink.running() as port: ...
    sink.messages      # every accepted message, parsed, in arrival order

``flaky`` answers that share of transactions 451 (or 421 and hang up) at random; ``drop`` closes
the connection in the middle of the message data; ``smtputf8=False`` is a server without SMTPUTF8. ``tls`` offers STARTTLS with a certificate from
a test CA (``sink.ca_file``); ``auth`` requires a login. A message counts as accepted only when the
server answers 250, as at a real server. ``meet=N`` holds every RCPT until N different
connections have each sent one (at most 20 s, before any message data: a client kept waiting after
its final dot would rightly send again), so N clients started together really overlap; ``met``
says whether they did.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["SmtpSink"]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list) -> str:
        await self._meet(session)
        if address.lower() in self.sink.reject:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        roll = self.sink.random.random()
        if roll < self.sink.flaky / 2:
            return "451 4.3.0 Try again later"
        if roll < self.sink.flaky:
            return "421 4.3.2 Service shutting down"
        with self.sink.lock:
            parsed = message_from_bytes(envelope.original_content or b"", policy=policy.default)
            self.sink.raw.append(envelope.original_content or b"")
            self.sink.messages.append(parsed)  # type: ignore[arg-type]
            self.sink.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos)))
            if self.sink.on_accept is not None:
                self.sink.on_accept(len(self.sink.messages))
        return "250 2.0.0 Queued"

    async def _meet(self, session: Session) -> None:
        if not self.sink.meet:
            return
        self.sink.peers.add(session.peer)
        deadline = asyncio.get_running_loop().time() + 20  # within the client's 30 s timeout
        while len(self.sink.peers) < self.sink.meet and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        self.sink.met = self.sink.met or len(self.sink.peers) >= self.sink.meet
        self.sink.meet = 0  # met, or given up on once: later messages are never held


class _DroppingSMTP(SMTP):
    """Closes the connection part way through the message data, now and then."""

    def __init__(self, *args: Any, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink

    async def smtp_DATA(self, arg: str) -> None:
        if self.envelope.rcpt_tos and self.sink.random.random() < self.sink.drop:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.read(512)  # some of the message, then hang up
            self.transport.close()
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        self.sink = sink
        super().__init__(_Handler(sink), hostname="127.0.0.1", port=_free_port(), **kwargs)

    def factory(self) -> SMTP:
        return _DroppingSMTP(self.handler, sink=self.sink, **self.SMTP_kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpSink:
    """Collects what a real aiosmtpd server accepts; see the module docstring for the options."""

    def __init__(
        self,
        *,
        reject: set[str] | None = None,
        flaky: float = 0.0,
        drop: float = 0.0,
        tls: bool = False,
        auth: tuple[str, str] | None = None,
        seed: int = 0,
        workdir: Path | None = None,
        meet: int = 0,
        smtputf8: bool = True,
    ) -> None:
        self.meet, self.smtputf8 = meet, smtputf8
        self.met = False
        self.peers: set[Any] = set()
        self.reject = {a.lower() for a in reject or ()}
        self.flaky, self.drop = flaky, drop
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.on_accept: Any = None
        self.tls, self.auth = tls, auth
        self.workdir = workdir
        self.ca_file = ""
        self.logins: list[str] = []

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == self.auth
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        smtp: dict[str, Any] = {"decode_data": False, "enable_SMTPUTF8": self.smtputf8}
        if self.tls:
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            assert self.workdir is not None, "tls needs a workdir for the CA file"
            self.ca_file = str(self.workdir / "test-ca.pem")
            ca.cert_pem.write_to_path(self.ca_file)
            smtp.update(tls_context=context, require_starttls=True)
        if self.auth:
            smtp.update(
                authenticator=self._authenticate, auth_require_tls=self.tls, auth_exclude_mechanism=["CRAM-MD5"]
            )
        kwargs.update(smtp)
        return kwargs

    @contextmanager
    def running(self) -> Iterator[int]:
        """Start the server on an ephemeral port of 127.0.0.1; yield the port."""
        kwargs = self._kwargs()
        controller = _Controller(self, **kwargs)
        controller.start()
        try:
            yield controller.port
        finally:
            controller.stop()

    def by_recipient(self) -> dict[str, int]:
        """How many messages each address received."""
        counts: dict[str, int] = {}
        for _, rcpts in self.envelopes:
            for address in rcpts:
                counts[address.lower()] = counts.get(address.lower(), 0) + 1
        return counts
