"""End to end in a real browser: ``digest serve`` on 127.0.0.1, a real SMTP server (aiosmtpd), headless
Chromium driven by Playwright. A person subscribes, confirms from the email, receives ``digest send``'s
edition, changes topics from its link, and the one-click unsubscribe POST from its header removes them;
then they subscribe again and unsubscribe with the page's button. Screenshots of each page are saved
in ``tests/artifacts/``.

Chromium resolves no host name but 127.0.0.1 (``--host-resolver-rules``), so nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from helpers import make_post
from smtpserver import SmtpSink

from digest import clock, config
from digest.store import Store

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (CI installs it in .ci/run: apt-get install chromium)"
    ),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -e '.[test]')"),
]

SECRET = "browser-test-secret-0123456789-abcdef"
ANA = "ana@example.org"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path, port: int, smtp_port: int) -> Path:
    today = WEEKDAYS[clock.now().weekday()]
    path = tmp_path / "feeds.toml"
    path.write_text(
        f"""
[digest]
title = "Health IT weekly"
send_on = "{today} 23:59"

[subscription]
public_url = "http://127.0.0.1:{port}"
secret = "${{DIGEST_SECRET}}"

[mail]
from = "Health IT Weekly <digest@hit.example>"
smtp = "smtp://127.0.0.1:{smtp_port}"
tls = "none"

[[topics]]
name = "Interoperability"
description = "Exchanging health data between systems: HL7, FHIR, APIs."
keywords = ["FHIR", "HL7", "interoperability", "API"]

[[topics]]
name = "Health IT"
description = "Electronic health records and clinical systems."
keywords = ["EHR", "EMR", "electronic health record", "Epic"]
""",
        encoding="utf-8",
    )
    return path


def _seed(path: Path) -> None:
    now = clock.now()
    texts = [
        ("FHIR R6 ballot opens: what changes for implementers", "FHIR"),
        ("Mapping HL7 v2 ADT messages to FHIR Encounter resources", "FHIR"),
        ("Epic go-live lessons from a rural hospital EHR team", "EHR"),
        ("Lunch today: tacos from the food truck, delicious", ""),
    ]
    with Store.open(config.load(path).database_url) as store:
        for i, (text, tag) in enumerate(texts):
            post = make_post(
                f"https://posts.example/{i}",
                text=text,
                html=f"<p>{text}</p>",
                tags=(tag,) if tag else (),
                # before last week's send time ("today 23:59", a week ago): in the last completed edition,
                # which `digest send` sends and the schedule, its week over, leaves alone
                published=now - timedelta(days=7, hours=2 + i),
            )
            store.add_posts("feed:https://posts.example/feed", [post])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, object]]:
    """``digest serve`` (schedule included) on a free port of 127.0.0.1, mailing through aiosmtpd."""
    with serving(tmp_path, _seed) as found:
        yield found


@contextlib.contextmanager
def serving(tmp_path: Path, seed: Callable[[Path], None], *args: str) -> Iterator[dict[str, object]]:
    """``digest serve ARGS`` on a free port of 127.0.0.1 over a config `seed` filled, mailing through aiosmtpd."""
    sink = SmtpSink()
    with sink.running() as smtp_port:
        port = _free_port()
        path = _config(tmp_path, port, smtp_port)
        env = {**os.environ, "DIGEST_SECRET": SECRET}
        os.environ["DIGEST_SECRET"] = SECRET
        seed(path)
        log = (tmp_path / "serve.log").open("w")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "digest",
                "--config",
                str(path),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(base, server)
            yield {"base": base, "sink": sink, "config": path, "env": env, "log": tmp_path / "serve.log"}
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
            os.environ.pop("DIGEST_SECRET", None)


def _wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "digest serve exited early"
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("digest serve did not come up within 30 s")


def _mail(sink: SmtpSink, address: str, subject_start: str, count: int = 1) -> EmailMessage:
    """The ``count``-th message to ``address`` whose subject starts so, waiting a little for it."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = [m for m in sink.messages if m["To"] == address and m["Subject"].startswith(subject_start)]
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.1)
    raise AssertionError(f"no message {subject_start!r} to {address}: {[m['Subject'] for m in sink.messages]}")


def _link(message: EmailMessage, base: str, kind: str) -> str:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(rf"{re.escape(base)}/{kind}/[A-Za-z0-9_.\-]+", text)
    assert match, text
    return match.group(0)


def _cli(served: dict[str, object], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(served["config"]), *args],
        capture_output=True,
        text=True,
        env=served["env"],  # type: ignore[arg-type]
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"web-{name}.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{name}: horizontal scroll ({width}px)"  # type: ignore[index]


def test_subscribe_confirm_receive_change_topics_and_unsubscribe_in_a_real_browser(served: dict[str, object]) -> None:
    base, sink = str(served["base"]), served["sink"]
    assert isinstance(sink, SmtpSink)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            desktop = browser.new_page(viewport={"width": 1024, "height": 800})
            desktop.goto(f"{base}/")
            _shot(desktop, "subscribe-desktop")
            page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)

            # 1. subscribe: a phone-sized page, every topic checked, labels, a visible focus ring
            page.goto(f"{base}/")
            expect(page.get_by_role("heading", level=1)).to_contain_text("Health IT weekly")
            email = page.get_by_label("Your email address")
            email.focus()
            assert page.evaluate("getComputedStyle(document.activeElement).outlineWidth") == "3px"
            assert page.locator("#topic-1").is_checked() and page.locator("#topic-2").is_checked()
            _shot(page, "subscribe")
            email.fill("Ana@Example.org")
            page.locator("#topic-2").uncheck()
            page.get_by_role("button", name="Subscribe").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
            _shot(page, "check-inbox")

            # 2. the confirmation email's link opens a page; only its button confirms
            confirm = _link(_mail(sink, ANA, "Confirm your subscription"), base, "confirm")
            page.goto(confirm)
            _shot(page, "confirm")
            assert "pending" in _state(served)
            page.get_by_role("button", name="Confirm my subscription").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
            _shot(page, "confirmed")
            assert json.loads(_cli(served, "subscribers", "list", "--json")) == [
                {"email": ANA, "state": "confirmed", "topics": ["Interoperability"]}
            ]

            # 3. digest send: the edition arrives, with RFC 8058 headers and the reader's links
            _cli(served, "send")
            edition = _mail(sink, ANA, "Health IT weekly")
            assert edition["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            one_click = re.search(r"<(http[^>]+)>", edition["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
            assert one_click.startswith(f"{base}/unsubscribe/")
            assert "FHIR R6 ballot" in edition.get_body(("plain",)).get_content()  # type: ignore[union-attr]

            # 4. change topics from the edition's preferences link
            page.goto(_link(edition, base, "preferences"))
            _shot(page, "preferences")
            page.locator("#topic-2").check()
            page.get_by_role("button", name="Save my topics").click()
            expect(page.get_by_role("status")).to_contain_text("Saved")
            _shot(page, "preferences-saved")
            [row] = json.loads(_cli(served, "subscribers", "list", "--json"))
            assert row["topics"] == ["Interoperability", "Health IT"]

            # 5. the public archive: index, the week's edition (its own CSP), the left-out posts, the feed
            page.goto(f"{base}/editions")
            _shot(page, "editions")
            page.locator("main a").first.click()
            expect(page.locator("body")).to_contain_text("FHIR R6 ballot")
            assert "/unsubscribe/" not in page.content()
            _shot(page, "edition")
            page.goto(page.url + "/left-out")
            expect(page.locator("main")).to_contain_text("tacos")
            _shot(page, "left-out")
            assert httpx.get(f"{base}/feed.atom").status_code == 200

            # 6. RFC 8058 one-click: a POST to the List-Unsubscribe URL, no page, no cookie
            answer = httpx.post(one_click, data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 200
            assert json.loads(_cli(served, "subscribers", "list", "--json")) == []
            assert "1 unsubscribed" in _cli(served, "check")

            # 7. they come back through the pages, then leave with the preferences page's button
            page.goto(f"{base}/")
            page.get_by_label("Your email address").fill(ANA)
            page.get_by_role("button", name="Subscribe").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
            page.goto(_link(_mail(sink, ANA, "Confirm your subscription", count=2), base, "confirm"))
            page.get_by_role("button", name="Confirm my subscription").click()
            page.get_by_role("link", name="Choose your topics").click()
            page.get_by_role("button", name="Unsubscribe").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
            _shot(page, "unsubscribed")
            assert json.loads(_cli(served, "subscribers", "list", "--json")) == []
        finally:
            browser.close()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    log = Path(str(served["log"])).read_text()
    assert "schedule: collecting every 1h" in log, log  # serve runs the schedule too


def _state(served: dict[str, object]) -> str:
    return _cli(served, "subscribers", "list", "--json")
