"""One golden from feed bytes to the received ``.eml``: a real RSS file served on 127.0.0.1, ``digest run``
(collect, filter, compose, send) at a pinned moment, the message as a real SMTP server received it.

Volatile parts are scrubbed before the comparison (rss2email's habit): the Date and Message-ID headers,
MIME boundaries, and the signed tokens in links, which differ on every run by design; line ends (CRLF
on the wire) become LF so the golden reads as text. Everything else, headers, both bodies and their
transfer encoding, is compared byte for byte. Regenerate only on purpose:
``DIGEST_REGEN_GOLDEN=1 python -m pytest tests/test_golden_eml.py``.
"""

from __future__ import annotations

import os
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from helpers import NOW, SEND_AT_NOW, TEST_COLLECT, run_cli
from httpserver import Response, TestServer
from smtpserver import SmtpSink
from test_mail import TOPICS, smtp_section

from digest import clock

HERE = Path(__file__).resolve().parent
FEED = HERE / "fixtures" / "feeds" / "rss20.xml"
GOLDEN = HERE / "golden" / "run.eml"
REGEN = os.environ.get("DIGEST_REGEN_GOLDEN") == "1"

CONFIG = """
[digest]
title = "Health IT weekly"
{send_at}

{mail}

[subscription]
public_url = "https://digest.example.org"
secret = "${{DIGEST_GOLDEN_SECRET}}"

[[sources]]
feed = "{feed}"

[[subscribers]]
email = "ana@example.org"
name = "Ana"
"""


def run_week(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """``digest run`` at NOW over the fixture feed; the one message the SMTP server accepted, as bytes."""
    monkeypatch.setenv(clock.ENV, NOW.isoformat())
    monkeypatch.setenv("DIGEST_GOLDEN_SECRET", "golden-test-secret-3f9c1a7e5b2d4f60a8c1e9b7")
    sink = SmtpSink()
    with TestServer() as web, sink.running() as port:
        web.route("/feed.xml", Response(FEED.read_bytes(), headers={"Content-Type": "application/rss+xml"}))
        config = tmp_path / "feeds.toml"
        text = CONFIG.format(send_at=SEND_AT_NOW, mail=smtp_section(port), feed=web.url("/feed.xml")) + TOPICS
        config.write_text(TEST_COLLECT + text, encoding="utf-8")
        assert run_cli("--config", str(config), "run", "--quiet") == 0
        assert web.hits("/feed.xml") == 1
    [raw] = sink.raw
    return raw


_VOLATILE_HEADERS = re.compile(rb"^(Date|Message-ID): .*$", re.MULTILINE)
_BOUNDARY = re.compile(rb"===============\d+==")
_TOKEN_LINK = re.compile(rb"(/(?:unsubscribe|preferences|feedback|confirm)/)([^\"\s>]+)")


def scrub(raw: bytes) -> bytes:
    """The message with its volatile parts replaced by placeholders (a feedback link keeps its vote
    and the post and topic it names, which do not change; only its signatures do)."""
    text = raw.replace(b"\r\n", b"\n")
    text = _VOLATILE_HEADERS.sub(rb"\1: <scrubbed>", text)
    text = _BOUNDARY.sub(b"<boundary>", text)

    def token(match: re.Match[bytes]) -> bytes:
        fields = match.group(2).split(b"~")
        kept = [b"<signed>", *fields[1:-1], b"<signed>"] if len(fields) > 1 else [b"<signed>"]
        return match.group(1) + b"~".join(kept)

    return _TOKEN_LINK.sub(token, text)


def test_a_week_from_feed_bytes_to_the_received_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = run_week(tmp_path, monkeypatch)
    message = message_from_bytes(raw, policy=policy.default)
    # The clock seam's day, not the wall clock's (a set clock moves on with real time, so not the second).
    assert message["Date"].startswith("Sat, 21 Nov 2026 12:")
    assert message["Message-ID"].startswith("<2026-W47.")  # scrubbed below, but still the edition's week
    actual = scrub(raw)
    if REGEN:
        GOLDEN.write_bytes(actual)
    assert GOLDEN.exists(), f"{GOLDEN} is missing; create it with DIGEST_REGEN_GOLDEN=1"
    assert actual == GOLDEN.read_bytes(), f"{GOLDEN.name} changed; review the difference, then DIGEST_REGEN_GOLDEN=1"


def test_the_scrub_hides_only_what_varies() -> None:
    """The placeholders replace exactly the volatile values, so a change anywhere else still shows."""
    link = b"https://d.example/feedback/ImFu.axA6Jw.B3Yb~less~9525dd3b~07d034e7~FJT1yo"
    raw = (
        b"Date: Sat, 21 Nov 2026 12:00:04 +0000\r\nSubject: Date: kept\r\n"
        b' boundary="===============0647538343763355431=="\r\n'
        + link
        + b"\r\n<https://d.example/unsubscribe/ImFu.axA6Jw.v15a>, <mailto:x@d.example>\r\n"
    )
    assert scrub(raw) == (
        b'Date: <scrubbed>\nSubject: Date: kept\n boundary="<boundary>"\n'
        b"https://d.example/feedback/<signed>~less~9525dd3b~07d034e7~<signed>\n"
        b"<https://d.example/unsubscribe/<signed>>, <mailto:x@d.example>\n"
    )
