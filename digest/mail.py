"""Mailer: each subscriber gets exactly one message per week, by SMTP or into the outbox folder.

A message is built once per edition (headers and both parts serialized with ``email.policy.SMTP``),
then each subscriber's copy only fills in placeholders. A `Messenger` hands one message over; the
send loop records every delivery in the store before and after, so a re-run after a crash sends
only what was not handed over. See `delivery` for the one unavoidable window.
"""

from __future__ import annotations

import contextlib
import email.utils
import html as htmllib
import os
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote

from . import addresses
from .config import MailSettings, expand_env, smtp_url
from .errors import DigestError, MailError, PermanentMailError, TransientMailError, one_line
from .feedback import FeedbackLinks
from .feedback import fill as fill_feedback

__all__ = [
    "DkimSigner",
    "MailError",
    "MessageTemplate",
    "Messenger",
    "OutboxMessenger",
    "PermanentMailError",
    "SmtpMessenger",
    "TransientMailError",
    "messenger_for",
]

# Per-subscriber values a message template carries until `MessageTemplate.render` fills them in.
TO, MESSAGE_ID, UNSUB_HTTP, UNSUB_MAILTO = "%%TO%%", "%%MESSAGE_ID%%", "%%LIST_UNSUBSCRIBE%%", "%%LIST_UNSUB_MAILTO%%"
_LONG_LINE = 990  # SMTP's hard limit is 998 octets a line


class Messenger(Protocol):
    """Hands messages over, one at a time (SMTP, outbox). ``push`` calls ``commit`` at the last moment
    before the handover becomes irreversible, so the caller can record it first."""

    name: str

    def push(self, sender: str, recipient: str, message: bytes, commit: Callable[[], None]) -> str: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


# -- building messages --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Links:
    """One subscriber's links: where to unsubscribe (a page and RFC 8058 one-click) and to change topics."""

    unsubscribe: str
    preferences: str
    one_click: str
    mailto: str
    feedback: FeedbackLinks | None = None  # the cards' "not for me" / "more like this" links; None: none shown


@dataclass(slots=True)
class MessageTemplate:
    """One edition as a serialized message with placeholders; `render` makes a subscriber's copy."""

    raw: str
    html_start: int
    list_id: str
    _header_end: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._header_end = self.raw.index("\r\n\r\n")

    @classmethod
    def build(
        cls,
        *,
        subject: str,
        html: str,
        text: str,
        sender: str,
        reply_to: str | None,
        list_id: str,
        date: datetime,
        one_click: bool = True,
    ) -> MessageTemplate:
        """Build and serialize the shared message once: multipart/alternative, UTF-8, 8bit parts.
        With ``one_click``, List-Unsubscribe carries an https URL for RFC 8058 beside the mailto."""
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["From"] = sender
        msg["To"] = TO
        if reply_to:
            msg["Reply-To"] = reply_to
        msg["Subject"] = subject
        msg["Date"] = email.utils.format_datetime(date)
        msg["Message-ID"] = MESSAGE_ID
        msg["List-Id"] = list_id
        if one_click:
            msg["List-Unsubscribe"] = f"<{UNSUB_HTTP}>, <{UNSUB_MAILTO}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        else:
            msg["List-Unsubscribe"] = f"<{UNSUB_MAILTO}>"
        msg.set_content(_short_lines(text), subtype="plain", charset="utf-8", cte="8bit")
        msg.add_alternative(_short_lines(html), subtype="html", charset="utf-8", cte="8bit")
        raw = msg.as_bytes(policy=SMTP_POLICY).decode("utf-8")
        return cls(raw, raw.index("Content-Type: text/html"), list_id)

    def render(self, recipient: str, message_id: str, links: Links, greeting_name: str = "") -> bytes:
        """A subscriber's message: headers and links filled in (HTML-escaped in the HTML part)."""
        greeting = f"Hi {greeting_name.strip()}," if greeting_name.strip() else "Hello,"
        headers = {
            TO: addresses.to_header(recipient),
            MESSAGE_ID: message_id,
            UNSUB_HTTP: links.one_click,
            UNSUB_MAILTO: links.mailto,
        }
        text = {
            "%%GREETING%%": greeting,
            "%%PREFERENCES_URL%%": links.preferences,
            "%%UNSUBSCRIBE_URL%%": links.unsubscribe,
        }
        html = {k: htmllib.escape(v) for k, v in text.items()}
        head, body = self.raw[: self._header_end], self.raw[self._header_end :]
        split = self.html_start - self._header_end
        text_part = fill_feedback(_fill(body[:split], text), links.feedback)
        html_part = fill_feedback(_fill(body[split:], html), links.feedback, escape=True)
        out = _fill(head, headers) + text_part + html_part
        return out.encode("utf-8")


_TOKEN = re.compile(r"%%[A-Z_]+%%")


def _fill(chunk: str, values: dict[str, str]) -> str:
    return _TOKEN.sub(lambda m: values.get(m.group(0), m.group(0)), chunk)


def _short_lines(body: str) -> str:
    """Keep every line under SMTP's limit: break long HTML lines between tags (never inside one)."""
    if all(len(line) <= _LONG_LINE for line in body.splitlines()):
        return body
    out = []
    for line in body.splitlines():
        while len(line) > _LONG_LINE:
            cut = line.rfind(">", 0, _LONG_LINE) + 1 or line.rfind(" ", 0, _LONG_LINE) + 1 or _LONG_LINE
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return "\n".join(out) + ("\n" if body.endswith("\n") else "")


def message_id(week: str, address: str, domain: str) -> str:
    """A stable Message-ID per week and subscriber: a copy sent twice (RFC 1047) is recognisably the same."""
    import hashlib

    digest = hashlib.sha256(f"{week}\x1f{address.lower()}".encode()).hexdigest()[:24]
    return f"<{week}.{digest}@{domain}>"


def sender_domain(sender: str) -> str:
    address = email.utils.parseaddr(sender)[1]
    return address.rsplit("@", 1)[-1] if "@" in address else "localhost"


# -- messengers ---------------------------------------------------------------------------------


def messenger_for(settings: MailSettings, outbox: Path, week: str) -> Messenger:
    """SMTP when ``[mail] smtp`` is set, otherwise the outbox folder."""
    if settings.smtp:
        return SmtpMessenger(expand_env(settings.smtp), settings.tls, ca_file=settings.ca_file)
    return OutboxMessenger(outbox / week)


class OutboxMessenger:
    """Writes each message as ``<address>.eml`` into a folder; the rename is the handover."""

    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DigestError(f"{folder}: cannot create the outbox folder: {exc.strerror}") from None

    def push(self, sender: str, recipient: str, message: bytes, commit: Callable[[], None]) -> str:
        final = self.folder / f"{_safe_name(recipient)}.eml"
        partial = final.with_suffix(".eml.partial")
        try:
            with open(partial, "wb") as handle:
                handle.write(message)
                handle.flush()
                os.fsync(handle.fileno())
            commit()
            os.replace(partial, final)
        except OSError as exc:
            raise TransientMailError(f"{final}: cannot write: {exc.strerror}") from None
        return f"written {final}"

    def flush(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the renames themselves survive a power loss
        finally:
            os.close(fd)

    def close(self) -> None:
        self.flush()


def _safe_name(address: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", address.lower())


class SmtpMessenger:
    """One reused SMTP connection (STARTTLS, implicit TLS or none; AUTH when the URL has a user).

    The final ``.`` of DATA is sent only after ``commit``: until then the server has accepted nothing.
    """

    name = "smtp"

    def __init__(self, url: str, tls: str = "starttls", *, timeout: float = 30.0, ca_file: str | None = None) -> None:
        try:
            parts = smtp_url(url)
        except ValueError as exc:
            raise DigestError(f"[mail] smtp: {exc}") from None
        self.host = parts.hostname or ""
        self.tls = "implicit" if parts.scheme == "smtps" else tls
        self.port = parts.port or (465 if self.tls == "implicit" else 587 if self.tls == "starttls" else 25)
        self.user = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        self._conn: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        try:
            if self.tls == "implicit":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.context)
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            _no_delay(conn)
            conn.ehlo()
            if self.tls == "starttls":
                conn.starttls(context=self.context)
                _no_delay(conn)
                conn.ehlo()
            if self.user:
                conn.login(self.user, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DigestError(f"{self.where}: login refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DigestError(f"{self.where}: {exc}; check [mail] tls") from None
        except ssl.SSLError as exc:
            raise DigestError(f"{self.where}: TLS failed: {exc.reason or exc}; check [mail] tls and ca_file") from None
        except smtplib.SMTPResponseException as exc:
            raise _classify(exc.smtp_code, exc.smtp_error, self.where) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientMailError(f"{self.where}: cannot connect: {_reason(exc)}") from None
        self._conn = conn
        return conn

    def push(self, sender: str, recipient: str, message: bytes, commit: Callable[[], None]) -> str:
        conn = self._connection()
        try:
            if not conn.has_extn("8bitmime"):
                message = _seven_bit(message)
            options = ["BODY=8BITMIME"] if conn.has_extn("8bitmime") else []
            recipient = addresses.wire_form(recipient)
            if addresses.needs_smtputf8(recipient):
                if not conn.has_extn("smtputf8"):
                    raise PermanentMailError(
                        f"{self.where}: {recipient}: the server does not offer SMTPUTF8, which an address "
                        "with non-ASCII letters before the @ needs"
                    )
                options.append("SMTPUTF8")
            self._expect(conn.mail(email.utils.parseaddr(sender)[1], options), 250, conn)
            self._expect(conn.rcpt(recipient), (250, 251), conn)
            self._expect(conn.docmd("DATA"), 354, conn)
            conn.send(_dot_stuffed(message))
            commit()  # recorded as handed over; only now may the server accept it
            conn.send(b".\r\n")
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()  # the server drops an unfinished DATA: nothing was accepted
            raise TransientMailError(f"{self.where}: connection lost: {_reason(exc)}") from None
        except BaseException:
            self._drop()  # never leave a half-sent message on a connection we reuse
            raise
        try:
            code, reply = conn.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            # A server takes responsibility for a message only with its 250 (RFC 5321 4.1.1.4): with
            # no answer it is not delivered and is tried again (a server that kept it anyway makes
            # the duplicate RFC 1047 describes).
            self._drop()
            raise TransientMailError(f"{self.where}: no answer after the message was sent: {_reason(exc)}") from None
        if code != 250:
            if code == -1 or code == 421:
                self._drop()
            raise _classify(code, reply, self.where)
        return f"{code} {_text(reply)}"

    def _expect(self, answer: tuple[int, bytes], ok: int | tuple[int, ...], conn: smtplib.SMTP) -> None:
        code, reply = answer
        if code in ((ok,) if isinstance(ok, int) else ok):
            return
        if code == -1 or code == 421:
            self._drop()
        else:
            try:
                conn.rset()
            except (OSError, smtplib.SMTPException):
                self._drop()
        raise _classify(code, reply, self.where)

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def flush(self) -> None:
        """Nothing is buffered: every message is acknowledged before `push` returns."""

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._conn.quit()
            self._drop()


def _no_delay(conn: smtplib.SMTP) -> None:
    """Send each command at once: with Nagle's algorithm the final dot waits for the body's ACK,
    which the server delays, and every message costs tens of milliseconds of nothing."""
    if conn.sock is not None:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _classify(code: int, reply: bytes | str, where: str) -> MailError:
    message = f"{where}: {code} {_text(reply)}"
    if 500 <= code < 600:
        return PermanentMailError(message, code)
    return TransientMailError(message, code)


def _text(reply: bytes | str) -> str:
    value = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return one_line(value, 300)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return one_line(str(exc) or type(exc).__name__)


def _dot_stuffed(message: bytes) -> bytes:
    """The DATA payload without its final dot: leading dots doubled, ending in CRLF."""
    body = message.replace(b"\n.", b"\n..")  # a line's leading dot (bytes.replace: a regex costs 10x more)
    if body.startswith(b"."):
        body = b"." + body
    return body if body.endswith(b"\r\n") else body + b"\r\n"


def _seven_bit(message: bytes) -> bytes:
    """For a server without 8BITMIME: the same message re-encoded (quoted-printable) by the email package."""
    import email.parser

    parsed = email.parser.BytesParser(policy=SMTP_POLICY).parsebytes(message)
    for part in parsed.walk():
        if part.get_content_maintype() == "text":
            part.set_content(
                part.get_content(), subtype=part.get_content_subtype(), charset="utf-8", cte="quoted-printable"
            )
    return parsed.as_bytes(policy=SMTP_POLICY)


def unsubscribe_mailto(settings: MailSettings, address: str) -> str:
    """The mailto: form of List-Unsubscribe (to Reply-To or From)."""
    return f"mailto:{_curator(settings)}?subject={quote('unsubscribe ' + address)}"


def preferences_mailto(settings: MailSettings, address: str, topics: Sequence[str]) -> str:
    """ "Change your topics" where there are no subscription pages: a mail to the curator (Reply-To or
    From) whose subject asks for a change of topics, never to unsubscribe, and whose body lists them."""
    body = f"The topics I want (delete the others): {', '.join(topics)}"
    return f"mailto:{_curator(settings)}?subject={quote('change topics for ' + address)}&body={quote(body)}"


def _curator(settings: MailSettings) -> str:
    return email.utils.parseaddr(settings.reply_to or settings.from_)[1]


def pace(rate: float) -> Iterable[None]:
    """Yield once per message, sleeping so no more than ``rate`` go out per second."""
    interval = 1.0 / rate
    due = time.monotonic()
    while True:
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        due = max(due, time.monotonic() - interval) + interval
        yield None


DKIM_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"MIME-Version",
    b"Content-Type",
)


class DkimSigner:
    """Signs each message with the From domain's key (``[mail] dkim_key``), as the last step before handover."""

    def __init__(self, key_path: Path, selector: str, domain: str) -> None:
        try:
            self.key = key_path.read_bytes()
        except OSError as exc:
            raise DigestError(f"[mail] dkim_key: {key_path}: cannot be read: {exc.strerror}") from None
        if b"PRIVATE KEY" not in self.key:
            raise DigestError(f"[mail] dkim_key: {key_path}: not a PEM private key")
        self.selector, self.domain = selector.encode(), domain.encode()

    def sign(self, message: bytes) -> bytes:
        import dkim

        present = {line.split(b":", 1)[0].strip().lower() for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")}
        headers = [h for h in DKIM_HEADERS if h.lower() in present]
        try:
            signature = dkim.sign(message, self.selector, self.domain, self.key, include_headers=headers)
        except dkim.DKIMException as exc:
            raise DigestError(f"[mail] dkim_key: cannot sign: {exc}") from None
        return bytes(signature) + message
