"""Issue 17 end to end in a real browser: ``digest serve`` on 127.0.0.1, a real SMTP server (aiosmtpd),
headless Chromium. Two readers get a sent edition; one opens "Not for me" on a card of the email itself,
presses the page's button, and the next week's edition leaves out a post like it (the same account) from
hers while the other reader's still has it. Screenshots of the email and the page, light and dark, at 375
and 800 px, are saved in ``tests/artifacts/``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import make_post
from smtpserver import SmtpSink

from digest import clock, config
from digest.models import Author
from digest.store import Store
from web.test_web_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    _mail,
    pytestmark,  # noqa: F401  (skipped without Chromium or Playwright, as that test is)
    serving,
    sync_playwright,
)

ANA, BEN = "ana@example.org", "ben@example.org"
FIRST = [
    ("FHIR R6 ballot opens: what changes for implementers", "FHIR", "hl7"),
    ("Mapping HL7 v2 ADT messages to FHIR Encounter resources", "FHIR", "mapper"),
    ("Epic go-live lessons from a rural hospital EHR team", "EHR", "rural"),
]
SECOND = [
    ("FHIR subscriptions in R5: a worked example for implementers", "FHIR", "hl7"),
    ("Epic and Cerner EHR market share in rural hospitals", "EHR", "rural"),  # by the account Ana turns down
]
SIZES = (375, 800)


def _add(path: Path, posts: list[tuple[str, str, str]], *, ends_days_ago: int, first: int) -> None:
    now = clock.now()
    with Store.open(config.load(path).database_url) as store:
        for i, (text, tag, who) in enumerate(posts):
            handle = f"@{who}@example.org"
            post = make_post(
                f"https://posts.example/{first + i}",
                text=text,
                html=f"<p>{text}</p>",
                tags=(tag,),
                author=Author(who.title(), handle, f"https://example.org/{handle}"),
                published=now - timedelta(days=ends_days_ago, hours=2 + i),
            )
            store.add_posts("feed:https://posts.example/feed", [post])


def _cli(env: dict[str, str], path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _html(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()  # type: ignore[union-attr]


def _text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def _shots(browser: object, name: str, *, html: str = "", url: str = "") -> None:
    """Screenshots at 375 and 800 px, light and dark; no horizontal scroll at either width."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in SIZES:
        for scheme in ("light", "dark"):
            page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)  # type: ignore[attr-defined]
            if html:
                page.set_content(html)
            else:
                page.goto(url)
            page.screenshot(path=str(ARTIFACTS / f"feedback-{name}-{width}-{scheme}.png"), full_page=True)
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, f"{name} at {width}px: horizontal scroll ({scroll}px)"
            page.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, object]]:
    """``digest serve`` (pages only: each send here is the command's) with last week's posts stored."""
    with serving(tmp_path, lambda path: _add(path, FIRST, ends_days_ago=7, first=0), "--no-schedule") as found:
        yield found


def test_not_for_me_from_a_sent_email_changes_only_that_readers_next_edition(served: dict[str, object]) -> None:
    base, sink, path = str(served["base"]), served["sink"], Path(str(served["config"]))
    env: dict[str, str] = served["env"]  # type: ignore[assignment]
    assert isinstance(sink, SmtpSink)
    for reader in (ANA, BEN):
        _cli(env, path, "subscribers", "add", reader, "--confirmed")
    _cli(env, path, "send")
    first = _mail(sink, ANA, "Health IT weekly")
    assert "Epic go-live lessons" in _text(first) and "Epic go-live lessons" in _text(
        _mail(sink, BEN, "Health IT weekly")
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            _shots(browser, "email", html=_html(first))
            page = browser.new_page(viewport={"width": 375, "height": 900}, is_mobile=True, has_touch=True)
            page.set_content(_html(first))  # the email itself, as a mail client shows it
            card = page.locator(".card", has_text="Epic go-live lessons")
            card.get_by_role("link", name="Not for me").click()
            page.wait_for_url(f"{base}/feedback/**")
            assert page.get_by_role("heading", level=1).inner_text() == "Not for me"
            assert "Epic go-live lessons" in page.locator("main").inner_text()
            _shots(browser, "page", url=page.url)  # opening the link again records nothing either
            assert "no reader has pressed a button yet" in _cli(env, path, "topics", "feedback")
            page.get_by_role("button", name="Show me fewer like this").click()
            page.get_by_role("button", name="Undo").wait_for()
            assert "left out of yours" in page.locator("main").inner_text()
            _shots(browser, "pressed", url=page.url)
            listed = _cli(env, path, "topics", "feedback", "--json")
            assert '"not_for_me": 1' in listed and "Epic go-live" in listed

            # the next week: a post by the same account; Ana's edition leaves it out, Ben's keeps it
            _add(path, SECOND, ends_days_ago=0, first=10)
            later = {**env, "DIGEST_NOW": (clock.now() + timedelta(days=7)).isoformat()}
            _cli(later, path, "send")
            ana, ben = _mail(sink, ANA, "Health IT weekly", count=2), _mail(sink, BEN, "Health IT weekly", count=2)
            assert "Epic and Cerner EHR market share" not in _text(ana)
            assert "Epic and Cerner EHR market share" in _text(ben)
            assert "FHIR subscriptions in R5" in _text(ana) and "FHIR subscriptions in R5" in _text(ben)
            _shots(browser, "next-week-ana", html=_html(ana))
        finally:
            browser.close()
