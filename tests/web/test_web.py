"""The subscription app in-process (httpx over the ASGI transport, a real SQLite store): every route,
and every bad input we could think of. A GET never changes state; a POST acts only with its page's token."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import LAST_SEND, NOW, make_post
from webclient import CONFIG, PUBLIC, SECRET, Site, forms, inputs_and_labels, link_in, make_site

from digest import clock
from digest.models import Recipient
from digest.pipeline import send_week
from digest.store import suppressions
from digest.tokens import make_token
from digest.web import ARCHIVE_CSP, BODY_LIMIT, PAGE_CSP

ANA = "ana@example.org"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = make_site(tmp_path)
    yield made
    made.close()


def subscribe(site: Site, address: str = ANA, topics: list[str] | None = None, ip: str = "203.0.113.7"):
    client = site.client(ip)
    page = client.get("/")
    fields = {"email": address, "topics": topics if topics is not None else ["Interoperability", "Health IT"]}
    return client, client.submit(page, **fields)


def confirmed(site: Site, address: str = ANA) -> Recipient:
    client, _ = subscribe(site, address)
    page = client.get(link_in(site.mail.to(address)[-1], "confirm"))
    assert client.submit(page).status_code == 200
    found = site.store.subscriber(address)
    assert found is not None and found.status == "confirmed"
    return found


def state(site: Site) -> tuple[list[Recipient], list[str]]:
    with site.store.engine.connect() as conn:
        hashes = sorted(conn.execute(sa.select(suppressions.c.hash)).scalars())
    return site.store.subscribers(), hashes


def aged(purpose: str, address: str, seconds: int) -> str:
    """A token signed ``seconds`` before NOW (tokens read the clock seam, as every timestamp does)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(clock.ENV, (NOW - timedelta(seconds=seconds)).isoformat())
        return make_token(SECRET, purpose, address)


# -- the subscribe page ---------------------------------------------------------------------------


def test_subscribe_page_is_accessible_plain_html_with_every_topic_checked(site: Site) -> None:
    page = site.client().get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html.lower() and " style=" not in html and "<style" not in html
    assert '<html lang="en">' in html and 'name="viewport"' in html and 'href="/static/web.css"' in html
    fields, labels = inputs_and_labels(html)
    visible = [f for f in fields if f.get("type") != "hidden"]
    assert visible and all(f["id"] in labels for f in visible), "every control has a label"
    boxes = [f for f in visible if f["type"] == "checkbox"]
    assert [b["value"] for b in boxes] == ["Interoperability", "Health IT"] and all("checked" in b for b in boxes)
    email = next(f for f in visible if f["type"] == "email")
    assert email["maxlength"] == "254" and email["autocomplete"] == "email" and "required" in email
    assert "every Friday around 07:00 (UTC)" in html  # what arrives, and when
    assert "one-click unsubscribe" in html
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie


def test_stylesheet_has_focus_styles_and_is_served_as_css(site: Site) -> None:
    css = site.client().get("/static/web.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ":focus-visible" in css.text and "prefers-color-scheme: dark" in css.text


def test_subscribing_makes_a_pending_subscriber_and_sends_one_confirmation(site: Site) -> None:
    _, answer = subscribe(site, "Ana@Example.ORG", ["Health IT"])
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    found = site.store.subscriber(ANA)
    assert found == Recipient(ANA, "", ("Health IT",), "pending", "web", 0)
    [message] = site.mail.to(ANA)
    assert message["Subject"] == "Confirm your subscription to Health IT weekly"
    assert message["From"] == "Health IT Weekly <digest@hit.example>" and message["Auto-Submitted"] == "auto-generated"
    assert link_in(message, "confirm").startswith("/confirm/")
    html = message.get_body(("html",)).get_content()
    assert f"{PUBLIC}/confirm/" in html


def test_all_topics_is_stored_as_every_topic(site: Site) -> None:
    subscribe(site, ANA, ["Health IT", "Interoperability"])
    assert site.store.subscriber(ANA).topics is None  # type: ignore[union-attr]


def test_an_existing_address_gets_the_same_answer_and_an_already_subscribed_email(site: Site) -> None:
    confirmed(site, ANA)
    _, new = subscribe(site, "ben@example.org", ["Health IT"])
    _, again = subscribe(site, ANA, ["Health IT"])
    assert (again.status_code, again.text.replace(ANA, "X")) == (
        new.status_code,
        new.text.replace("ben@example.org", "X"),
    )
    assert set(again.headers) == set(new.headers)
    last = site.mail.to(ANA)[-1]
    assert last["Subject"] == "You are already subscribed to Health IT weekly"
    assert "/preferences/" in last.get_body(("plain",)).get_content()
    assert site.store.subscriber(ANA).topics is None  # type: ignore[union-attr]  # unchanged by a stranger


def test_subscribing_a_pending_address_again_sends_a_fresh_confirmation(site: Site) -> None:
    subscribe(site, ANA)
    subscribe(site, ANA, ["Health IT"])
    assert [m["Subject"].split()[0] for m in site.mail.to(ANA)] == ["Confirm", "Confirm"]
    assert site.store.subscriber(ANA).status == "pending"  # type: ignore[union-attr]


# -- confirm ----------------------------------------------------------------------------------------


def test_confirm_link_shows_a_page_and_only_its_post_confirms(site: Site) -> None:
    client, _ = subscribe(site)
    link = link_in(site.mail.to(ANA)[0], "confirm")
    for _ in range(3):  # a mail scanner opening the link, again and again
        page = client.get(link)
        assert page.status_code == 200 and "Confirm my subscription" in page.text
        assert page.headers["cache-control"] == "no-store"
    assert site.store.subscriber(ANA).status == "pending"  # type: ignore[union-attr]
    [form] = forms(page.text)
    assert form["method"] == "post" and form["action"] == link and form["hidden"]["csrf"]
    done = client.submit(page)
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert site.store.subscriber(ANA).status == "confirmed"  # type: ignore[union-attr]


def test_repeated_and_stale_confirmations_are_harmless(site: Site) -> None:
    client, _ = subscribe(site)
    link = link_in(site.mail.to(ANA)[0], "confirm")
    page = client.get(link)
    assert client.submit(page).status_code == 200
    assert "already subscribed" in client.get(link).text  # the link opened again: no button any more
    again = client.submit(page)  # the same form twice
    assert again.status_code == 200 and "You are subscribed" in again.text
    assert site.store.subscriber(ANA).status == "confirmed"  # type: ignore[union-attr]
    unsubscribe = make_token(SECRET, "unsubscribe", ANA)
    assert client.post(f"/unsubscribe/{unsubscribe}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert client.get(link).status_code == 404  # the page says there is nothing to confirm
    late = client.submit(page)  # and the old form, sent again, does not bring them back
    assert late.status_code == 404 and "no subscription waiting" in late.text.lower()
    assert site.store.subscriber(ANA) is None  # an old confirmation never brings them back


def test_an_expired_confirmation_link_says_so_and_changes_nothing(site: Site) -> None:
    subscribe(site)
    token = aged("confirm", ANA, 8 * 86400)
    client = site.client()
    page = client.get(f"/confirm/{token}")
    assert page.status_code == 400 and "expired" in page.text
    assert client.post(f"/confirm/{token}", data={"csrf": "x"}).status_code in (400, 403)
    assert site.store.subscriber(ANA).status == "pending"  # type: ignore[union-attr]


@pytest.mark.parametrize("purpose", ["confirm", "preferences", "unsubscribe"])
def test_forged_and_misused_tokens_are_refused(site: Site, purpose: str) -> None:
    confirmed(site)
    client = site.client()
    other = {"confirm": "unsubscribe", "preferences": "confirm", "unsubscribe": "preferences"}[purpose]
    genuine = make_token(SECRET, purpose, ANA)
    forged = [
        make_token("another-secret", purpose, ANA),  # signed with the wrong key
        make_token(SECRET, other, ANA),  # a real token for another purpose
        genuine[:-3] + ("AAA" if not genuine.endswith("AAA") else "BBB"),  # tampered signature
        "not-a-token",
        "x" * 5000,  # absurdly long
        "%00%0d%0aSet-Cookie:%20x=1",
    ]
    before = state(site)
    for token in forged:
        page = client.get(f"/{purpose}/{token}")
        assert page.status_code == 400, (token, page.status_code)
        assert "This link does not work" in page.text
        assert client.post(f"/{purpose}/{token}", data={"List-Unsubscribe": "One-Click"}).status_code in (400, 403)
    assert state(site) == before


# -- preferences -----------------------------------------------------------------------------------


def test_preferences_change_topics_without_a_password(site: Site) -> None:
    confirmed(site)
    client = site.client("198.51.100.1")
    link = f"/preferences/{make_token(SECRET, 'preferences', ANA)}"
    page = client.get(link)
    assert page.status_code == 200 and ANA in page.text
    assert site.store.subscriber(ANA).topics is None  # type: ignore[union-attr]
    saved = client.submit(page, 0, topics=["Health IT"])
    assert saved.status_code == 200 and "Saved" in saved.text
    assert site.store.subscriber(ANA).topics == ("Health IT",)  # type: ignore[union-attr]
    fields, _ = inputs_and_labels(client.get(link).text)
    checked = [f["value"] for f in fields if f.get("type") == "checkbox" and "checked" in f]
    assert checked == ["Health IT"]


@pytest.mark.parametrize(
    ("topics", "message"),
    [
        (["Gardening"], "There is no topic called &#39;Gardening&#39;"),
        ([], "Please choose at least one topic"),
        (["Health IT", "<script>alert(1)</script>"], "&lt;script&gt;"),
    ],
)
def test_preferences_refuse_unknown_topics_and_an_empty_choice(site: Site, topics: list[str], message: str) -> None:
    confirmed(site)
    client = site.client()
    page = client.get(f"/preferences/{make_token(SECRET, 'preferences', ANA)}")
    answer = client.submit(page, 0, topics=topics)
    assert answer.status_code == 400 and message in answer.text and "<script>alert" not in answer.text
    assert site.store.subscriber(ANA).topics is None  # type: ignore[union-attr]


def test_preferences_of_an_address_that_left_say_so(site: Site) -> None:
    confirmed(site)
    site.store.unsubscribe(ANA, NOW)
    page = site.client().get(f"/preferences/{make_token(SECRET, 'preferences', ANA)}")
    assert page.status_code == 404 and "not subscribed any more" in page.text


def test_an_expired_preferences_link_is_refused(site: Site) -> None:
    confirmed(site)
    page = site.client().get(f"/preferences/{aged('preferences', ANA, 91 * 86400)}")
    assert page.status_code == 400 and "expired" in page.text


# -- unsubscribe -----------------------------------------------------------------------------------


def test_unsubscribe_page_then_button_keeps_only_a_suppression(site: Site) -> None:
    confirmed(site)
    client = site.client()
    link = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', ANA)}"
    page = client.get(link)
    assert page.status_code == 200 and "Unsubscribe" in page.text
    assert site.store.subscriber(ANA) is not None  # the page alone changes nothing
    done = client.submit(page)
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    people, hashes = state(site)
    assert people == [] and len(hashes) == 1 and ANA not in hashes[0]
    assert site.store.suppressed(ANA) is not None
    assert client.submit(page).status_code == 200  # twice: harmless


def test_unsubscribe_from_the_preferences_page(site: Site) -> None:
    confirmed(site)
    client = site.client()
    page = client.get(f"/preferences/{make_token(SECRET, 'preferences', ANA)}")
    assert client.submit(page, 1).status_code == 200
    assert site.store.subscriber(ANA) is None and site.store.suppressed(ANA) is not None


@pytest.mark.parametrize("multipart", [False, True])
def test_rfc8058_one_click_post_unsubscribes_with_no_page_and_no_cookie(site: Site, multipart: bool) -> None:
    confirmed(site)
    client = site.client("192.0.2.55")  # a mail provider's server: no cookie, no CSRF token
    url = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', ANA)}"
    if multipart:
        answer = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    else:
        answer = client.post(
            url, content=b"List-Unsubscribe=One-Click", headers={"content-type": "application/x-www-form-urlencoded"}
        )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert site.store.subscriber(ANA) is None and site.store.suppressed(ANA) is not None


def test_a_post_without_one_click_or_a_token_does_not_unsubscribe(site: Site) -> None:
    confirmed(site)
    client = site.client()
    url = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', ANA)}"
    for data in ({}, {"List-Unsubscribe": "yes"}, {"csrf": "forged"}):
        assert client.post(url, data=data).status_code == 403
    assert site.store.subscriber(ANA) is not None


def test_suppression_blocks_silent_re_adding_but_not_the_person(site: Site) -> None:
    confirmed(site)
    site.store.unsubscribe(ANA, NOW)
    site.store.sync_config_subscribers([Recipient(ANA, "Ana", None)], NOW)
    assert site.store.subscriber(ANA) is None  # feeds.toml cannot bring them back
    client, _ = subscribe(site)  # they can
    assert site.store.subscriber(ANA).status == "pending"  # type: ignore[union-attr]
    assert site.store.suppressed(ANA) is not None  # until they confirm
    assert client.submit(client.get(link_in(site.mail.to(ANA)[-1], "confirm"))).status_code == 200
    assert site.store.suppressed(ANA) is None and site.store.subscriber(ANA).status == "confirmed"  # type: ignore[union-attr]


# -- CSRF ----------------------------------------------------------------------------------------------


def test_csrf_token_is_required_bound_to_the_cookie_the_form_and_the_link(site: Site) -> None:
    client = site.client()
    page = client.get("/")
    token = forms(page.text)[0]["hidden"]["csrf"]
    fields = {"email": ANA, "topics": ["Health IT"]}
    stranger = site.client("198.51.100.9")  # has no cookie from us
    stranger.get("/healthz")
    cases = [
        (client, {**fields}),  # missing
        (client, {**fields, "csrf": "forged"}),
        (client, {**fields, "csrf": make_token("other-secret", "csrf", "subscribe|" + "0" * 32 + "|x")}),
        (stranger, {**fields, "csrf": token}),  # a token without the cookie it was issued with
    ]
    for who, data in cases:
        answer = who.post("/subscribe", data=data)
        assert answer.status_code == 403, data
        assert "try again" in answer.text.lower() or "cookie" in answer.text.lower()
    other = site.client("198.51.100.10")
    other.get("/")  # another browser's cookie does not match this page's token
    assert other.post("/subscribe", data={**fields, "csrf": token}).status_code == 403
    assert site.mail.sent == [] and site.store.subscribers() == []
    assert client.post("/subscribe", data={**fields, "csrf": token}).status_code == 200


def test_csrf_token_of_one_form_does_not_work_on_another(site: Site) -> None:
    client, _ = subscribe(site)
    subscribe_token = forms(client.get("/").text)[0]["hidden"]["csrf"]
    link = link_in(site.mail.to(ANA)[0], "confirm")
    assert client.post(link, data={"csrf": subscribe_token}).status_code == 403
    subscribe(site, "ben@example.org")
    ben_page = client.get(link_in(site.mail.to("ben@example.org")[0], "confirm"))
    ben_token = forms(ben_page.text)[0]["hidden"]["csrf"]
    assert client.post(link, data={"csrf": ben_token}).status_code == 403  # bound to Ben's link
    assert site.store.subscriber(ANA).status == "pending"  # type: ignore[union-attr]


def test_an_old_form_and_a_cross_site_post_are_refused(site: Site) -> None:
    client = site.client()
    page = client.get("/")
    cookie = client.http.cookies["digest_csrf"]
    old = aged("csrf", f"subscribe|{cookie}|" + __import__("hashlib").sha256(b"").hexdigest()[:32], 3 * 3600)
    answer = client.post("/subscribe", data={"csrf": old, "email": ANA, "topics": ["Health IT"]})
    assert answer.status_code == 403 and "two hours old" in answer.text
    fresh = forms(page.text)[0]["hidden"]["csrf"]
    evil = client.post(
        "/subscribe",
        data={"csrf": fresh, "email": ANA, "topics": ["Health IT"]},
        headers={"origin": "https://evil.example"},
    )
    assert evil.status_code == 403 and "another site" in evil.text
    cross = client.post(
        "/subscribe",
        data={"csrf": fresh, "email": ANA, "topics": ["Health IT"]},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert cross.status_code == 403
    assert site.mail.sent == []


# -- input validation ---------------------------------------------------------------------------------


def test_an_address_with_a_utf8_local_part_is_accepted(site: Site) -> None:
    _, answer = subscribe(site, "Jörg@Bücher.example")
    assert answer.status_code == 200, answer.text
    found = site.store.subscriber("jörg@xn--bcher-kva.example")
    assert found is not None and found.status == "pending"
    assert len(site.mail.to("jörg@xn--bcher-kva.example")) == 1


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("", "Please enter your email address"),
        ("   ", "Please enter your email address"),
        ("ana", "must have an @-sign"),
        ("ana@", "something after the @-sign"),
        ("@example.org", "something before the @-sign"),
        ("ana@example", "It should have a period"),
        ("ana@-example.org", "cannot have a hyphen immediately after the @-sign"),
        ("ana@example..org", "two periods in a row"),
        ("ana@127.0.0.1", "not within a valid top-level domain"),
        ("ana smith@example.org", "cannot contain spaces"),
        ("ana@example.org\r\nBcc: victim@example.org", "cannot contain spaces or line breaks"),
        ("ana@example.org\nSubject: hi", "cannot contain spaces or line breaks"),
        ("ana@example.org%0d%0aBcc:x@y.org", "invalid characters"),
        ("<ana@example.org>", "angle brackets around the email address are not permitted"),
        ("ana@example.org,ben@example.org", "invalid characters"),
        ('"ana"@example.org', "Quoting the part before the @-sign is not allowed"),
        ("ana..smith@example.org", "two periods in a row"),
        ("a" * 65 + "@example.org", "before the @-sign is too long"),
        ("ana@" + "a" * 250 + ".org", "too long"),
        ("x" * 5000, "too long"),
        ("ana@exa\x00mple.org", "cannot contain spaces or line breaks"),
    ],
)
def test_bad_addresses_get_a_clear_message_and_nothing_is_sent(site: Site, address: str, message: str) -> None:
    _, answer = subscribe(site, address)
    assert answer.status_code == 400, answer.text
    assert message in answer.text.replace("&#39;", "'")
    assert 'role="alert"' in answer.text and 'aria-invalid="true"' in answer.text
    assert site.mail.sent == [] and site.store.subscribers() == []


def test_an_internationalized_domain_is_accepted_as_punycode(site: Site) -> None:
    subscribe(site, "ana@bücher.example")
    assert site.store.subscriber("ana@xn--bcher-kva.example") is not None


@pytest.mark.parametrize(
    ("topics", "message"),
    [
        (["Gardening"], "There is no topic called"),
        ([], "Please choose at least one topic"),
        (["Health IT", "x" * 3000], "There is no topic called"),
    ],
)
def test_bad_topic_choices_are_refused(site: Site, topics: list[str], message: str) -> None:
    _, answer = subscribe(site, ANA, topics)
    assert answer.status_code == 400 and message in answer.text
    assert len(answer.text) < 10_000  # a huge value is not echoed back whole
    assert site.mail.sent == []


def test_an_error_keeps_what_was_typed_escaped(site: Site) -> None:
    _, answer = subscribe(site, '"><script>alert(1)</script>', ["Health IT"])
    assert answer.status_code == 400 and "<script>alert(1)" not in answer.text
    assert "&#34;&gt;&lt;script&gt;" in answer.text or "&quot;&gt;&lt;script&gt;" in answer.text


def test_huge_malformed_and_odd_bodies_never_make_a_500(site: Site) -> None:
    client = site.client()
    page = client.get("/")
    csrf = forms(page.text)[0]["hidden"]["csrf"]
    urlencoded = {"content-type": "application/x-www-form-urlencoded"}
    too_big = client.post("/subscribe", content=b"email=" + b"a" * (BODY_LIMIT + 1), headers=urlencoded)
    assert too_big.status_code == 413 and too_big.headers["x-frame-options"] == "DENY"

    async def chunks():
        for _ in range(40):
            yield b"a" * 1024

    chunked = client.post("/subscribe", content=chunks(), headers=urlencoded)
    assert chunked.status_code == 413
    many = "&".join(f"topics=t{i}" for i in range(500))
    assert client.post("/subscribe", content=f"csrf={csrf}&email=a@b.org&{many}", headers=urlencoded).status_code == 400
    boundary = "b0undary"
    broken = f'--{boundary}\r\nContent-Disposition: form-data; name="email"\r\n\r\nana@example.org'.encode()
    answer = client.post(
        "/subscribe", content=broken, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert answer.status_code in (400, 403)
    with_file = client.post(
        "/subscribe", data={"csrf": csrf, "email": ANA}, files={"upload": ("x.txt", b"hello", "text/plain")}
    )
    assert with_file.status_code == 400
    odd = [
        (b'{"email": "ana@example.org"}', {"content-type": "application/json"}),
        (b"\xff\xfe\x00garbage", urlencoded),
        (f"csrf={csrf}&email=%FF%FE%00".encode(), urlencoded),
        (f"csrf={csrf}&email=ana@example.org&topics=%FF".encode(), urlencoded),
        (b"", {}),
        (b"email", {"content-type": "multipart/form-data"}),  # no boundary
    ]
    for body, headers in odd:
        answer = client.post("/subscribe", content=body, headers=headers)
        assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text[:300])
    lying = client.post("/subscribe", content=b"email=a", headers={**urlencoded, "content-length": "abc"})
    assert lying.status_code in (400, 413)
    assert site.mail.sent == []


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/subscribe", "POST"),
        ("PUT", "/", "GET"),
        ("DELETE", "/unsubscribe/abc", "GET"),
        ("POST", "/editions", "GET"),
        ("POST", "/feed.atom", "GET"),
        ("PATCH", "/preferences/abc", "GET"),
    ],
)
def test_wrong_methods_get_405_with_allow(site: Site, method: str, path: str, allowed: str) -> None:
    answer = site.client().request(method, path)
    assert answer.status_code == 405 and allowed in answer.headers["allow"]
    assert answer.headers["content-security-policy"] == PAGE_CSP


def test_unknown_pages_are_404_pages_with_security_headers(site: Site) -> None:
    for path in (
        "/nope",
        "/editions/2026-W99",
        "/editions/not-a-week",
        "/editions/2026-W47/../../etc",
        "/static/x.css",
    ):
        answer = site.client().get(path)
        assert answer.status_code == 404, path
        assert answer.headers["x-frame-options"] == "DENY"


# -- rate limits --------------------------------------------------------------------------------------


def test_rate_limit_per_ip_and_per_address(tmp_path: Path) -> None:
    config = CONFIG.replace("limit_per_ip = 50", "limit_per_ip = 3").replace(
        "limit_per_address = 5", "limit_per_address = 2"
    )
    site = make_site(tmp_path, config)
    try:
        for i in range(3):
            assert subscribe(site, f"r{i}@example.org", ip="203.0.113.1")[1].status_code == 200
        blocked = subscribe(site, "r9@example.org", ip="203.0.113.1")[1]
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert "Too many attempts" in blocked.text
        assert subscribe(site, "r9@example.org", ip="203.0.113.2")[1].status_code == 200  # another network
        assert subscribe(site, "r9@example.org", ip="203.0.113.3")[1].status_code == 200
        third = subscribe(site, "r9@example.org", ip="203.0.113.4")[1]  # the same address, a third time
        assert third.status_code == 429
        assert len(site.mail.to("r9@example.org")) == 2  # no mail bombing through us
        # an unknown address and a known one are limited alike: no enumeration by the limit either
        client, _ = subscribe(site, "r0@example.org", ip="203.0.113.5")
        link = link_in(site.mail.to("r0@example.org")[-1], "confirm")
        page = client.get(link)
        codes = [client.submit(page).status_code for _ in range(3)]
        assert codes == [200, 200, 429]  # confirm: 2 per address an hour
    finally:
        site.close()


def test_the_address_limit_counts_the_mailbox_not_its_plus_tags_or_gmail_dots(tmp_path: Path) -> None:
    site = make_site(tmp_path, CONFIG.replace("limit_per_address = 5", "limit_per_address = 2"))
    try:
        tagged = [f"victim+{i}@example.org" for i in range(4)]
        codes = [subscribe(site, a, ip=f"203.0.113.{10 + i}")[1].status_code for i, a in enumerate(tagged)]
        assert codes == [200, 200, 429, 429]
        dotted = ["v.ictim@gmail.com", "Vic.Tim+x@googlemail.com", "victim@gmail.com"]
        codes = [subscribe(site, a, ip=f"203.0.113.{20 + i}")[1].status_code for i, a in enumerate(dotted)]
        assert codes == [200, 200, 429]
        # the address is kept as typed (lower-cased): the tag and the dots are the reader's to keep
        assert site.store.subscriber("victim+1@example.org") is not None
        assert site.store.subscriber("vic.tim+x@googlemail.com") is not None
        assert len(site.mail.to("victim+1@example.org")) == 1
        # dots count only where the provider ignores them
        assert subscribe(site, "vic.tim@example.org", ip="203.0.113.30")[1].status_code == 200
    finally:
        site.close()


def test_the_ip_limit_counts_an_ipv6_client_by_its_64(tmp_path: Path) -> None:
    site = make_site(tmp_path, CONFIG.replace("limit_per_ip = 50", "limit_per_ip = 2"))
    try:
        codes = [subscribe(site, f"r{i}@example.org", ip=f"2001:db8:7:7::{i + 1:x}")[1].status_code for i in range(3)]
        assert codes == [200, 200, 429]
        assert subscribe(site, "r8@example.org", ip="2001:db8:7:8::1")[1].status_code == 200  # the next /64
    finally:
        site.close()


# -- GET never changes state ---------------------------------------------------------------------------


def test_no_get_changes_anything(site: Site) -> None:
    confirmed(site)
    subscribe(site, "ben@example.org")
    before = state(site)
    client = site.client()
    for purpose in ("confirm", "preferences", "unsubscribe"):
        for address in (ANA, "ben@example.org"):
            token = make_token(SECRET, purpose, address)
            for query in ("", "?List-Unsubscribe=One-Click", "?topics=Health+IT"):
                assert client.get(f"/{purpose}/{token}{query}").status_code == 200
                assert client.request("HEAD", f"/{purpose}/{token}{query}").status_code == 200
    for path in ("/", "/editions", "/feed.atom", "/manage", "/healthz"):
        assert client.get(path).status_code == 200
    assert state(site) == before


# -- the archive ---------------------------------------------------------------------------------------


POSTS = [
    ("FHIR R6 ballot opens: what changes for implementers", "FHIR"),
    ("Mapping HL7 v2 ADT messages to FHIR Encounter resources", "FHIR"),
    ("Our EHR upgrade weekend, hour by hour", "EHR"),
    ("Epic go-live lessons from a rural hospital EHR team", "EHR"),
    ("Lunch today: tacos from the food truck, delicious", ""),
    ("The dahlias in the garden are finally blooming", ""),
]


def sent_week(site: Site, people: list[Recipient]) -> str:
    for i, (text, tag) in enumerate(POSTS):
        post = make_post(
            f"https://posts.example/{i}",
            text=text,
            html=f"<p>{text}</p>",
            tags=(tag,) if tag else (),
            published=LAST_SEND - timedelta(hours=3 + i),  # in the edition completed at NOW
        )
        site.store.add_posts("feed:https://posts.example/feed", [post])
    for person in people:
        site.store.add_subscriber(person, NOW)
    report = send_week(site.settings, site.store, now=NOW, messenger=site.mail)  # type: ignore[arg-type]
    assert report.sent
    return report.week


def test_archive_index_week_selection_left_out_and_feed(site: Site) -> None:
    week = sent_week(site, [Recipient(ANA, "Ana", None), Recipient("ben@example.org", "Ben", ("Health IT",))])
    client = site.client()
    index = client.get("/editions")
    assert index.status_code == 200 and f'href="/editions/{week}"' in index.text
    full = client.get(f"/editions/{week}")
    assert full.status_code == 200 and "FHIR R6 ballot" in full.text and "Epic go-live" in full.text
    assert full.headers["content-security-policy"] == ARCHIVE_CSP and "script" not in ARCHIVE_CSP
    assert "<script" not in full.text.lower()
    assert "/unsubscribe/" not in full.text and "/preferences/" not in full.text and "%%" not in full.text
    assert f"{PUBLIC}/manage" in full.text and "Hello," in full.text and "Ana" not in full.text
    assert client.get("/manage").status_code == 200
    selection = client.get(f"/editions/{week}/health-it")
    assert selection.status_code == 200 and "Epic go-live" in selection.text and "FHIR R6 ballot" not in selection.text
    assert client.get(f"/editions/{week}/gardening").status_code == 404
    left = client.get(f"/editions/{week}/left-out")
    assert left.status_code == 200 and "tacos" in left.text and "dahlias" in left.text and "FHIR R6" not in left.text
    assert left.headers["content-security-policy"] == PAGE_CSP
    feed = client.get("/feed.atom")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(feed.content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    [entry] = root.findall("a:entry", ns)
    assert entry.find("a:link", ns).get("href") == f"{PUBLIC}/editions/{week}"  # type: ignore[union-attr]
    content = entry.find("a:content", ns)
    assert content is not None and content.get("type") == "html" and "FHIR R6 ballot" in (content.text or "")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", root.find("a:updated", ns).text or "")  # type: ignore[union-attr]


def test_an_archived_edition_works_for_a_visitor(site: Site) -> None:
    """Navigation, a Subscribe button, no "You get this because you subscribed", a zone said in words."""
    week = sent_week(site, [Recipient(ANA, "Ana", None)])
    later = NOW + timedelta(days=7)
    news = make_post(
        "https://posts.example/later",
        text="FHIR R6 ballot closes: the comments in numbers",
        html="<p>FHIR R6 ballot closes: the comments in numbers</p>",
        tags=("FHIR",),
        published=LAST_SEND + timedelta(days=7, hours=-3),
    )
    site.store.add_posts("feed:https://posts.example/feed", [news])
    newer = send_week(site.settings, site.store, now=later, messenger=site.mail).week  # type: ignore[arg-type]
    assert newer != week
    client = site.client()
    first, second = client.get(f"/editions/{week}").text, client.get(f"/editions/{newer}").text
    for page in (first, second):
        assert "You get this because you subscribed" not in page and "Change your topics</a> ·" not in page
        assert '<nav class="archive-nav" aria-label="Archive"' in page and 'href="/editions" ' in page
        assert '<a class="subscribe" href="/"' in page
        assert f'Subscribe</a> · Subscribed already? <a href="{PUBLIC}/manage"' in page
        assert "Times are UTC." in page
    assert f'href="/editions/{newer}" rel="next"' in first and 'rel="prev"' not in first
    assert f'href="/editions/{week}" rel="prev"' in second and 'rel="next"' not in second
    assert first.index('class="archive-nav"') < first.index("FHIR R6 ballot")  # the bar comes first
    # the reader's own copy still says why it came, and the feed's entries carry no bar
    (mailed, *_) = site.mail.to(ANA)
    assert "You get this because you subscribed" in mailed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "archive-nav" not in client.get("/feed.atom").text


def test_unsent_weeks_are_not_in_the_archive(site: Site) -> None:
    for i, (text, tag) in enumerate(POSTS):
        post = make_post(
            f"https://p.example/{i}", text=text, tags=(tag,) if tag else (), published=LAST_SEND - timedelta(hours=1)
        )
        site.store.add_posts("feed:x", [post])
    site.store.add_subscriber(Recipient(ANA), NOW)
    report = send_week(site.settings, site.store, now=NOW, dry_run=True, messenger=site.mail)  # type: ignore[arg-type]
    assert site.store.editions(report.week)  # composed and stored, but never sent
    client = site.client()
    assert client.get(f"/editions/{report.week}").status_code == 404
    assert report.week not in client.get("/editions").text
    assert ET.fromstring(client.get("/feed.atom").content).find("{http://www.w3.org/2005/Atom}entry") is None


def test_unsubscribing_keeps_the_week_in_the_archive(site: Site) -> None:
    week = sent_week(site, [Recipient(ANA, "Ana", None)])
    site.store.unsubscribe(ANA, NOW)
    assert site.client().get(f"/editions/{week}").status_code == 200
    assert all(d.email != ANA for d in site.store.deliveries(week))


def test_every_response_carries_the_security_headers(site: Site) -> None:
    client = site.client()
    for path in ("/", "/editions", "/feed.atom", "/static/web.css", "/healthz", "/nope", "/confirm/bad"):
        headers = client.get(path).headers
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp and "'unsafe-inline'" not in csp
        assert "default-src 'none'" in csp
    assert "strict-transport-security" in client.get("/").headers  # public_url is https


def test_health(site: Site) -> None:
    answer = site.client().get("/healthz")
    assert answer.status_code == 200 and answer.text == "ok\n"


# -- redirects ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/editions/", "/manage/", "/feed.atom/", "/editions//"])
def test_a_trailing_slash_redirects_to_public_url_whatever_the_host_header(site: Site, path: str) -> None:
    answer = site.client().get(path, headers={"host": "evil.example"})
    assert answer.status_code in (301, 307, 308), answer.status_code
    assert answer.headers["location"] == f"{PUBLIC}{path.rstrip('/')}"


def test_without_a_public_url_the_redirect_is_relative() -> None:
    # The app itself needs public_url (its links do), so the middleware is tried on its own here.
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from digest.web import SlashRedirect

    routes = [Route("/editions", lambda request: PlainTextResponse("ok"))]
    app = SlashRedirect(Starlette(routes=routes), base="", routes=routes)

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as client:
            return await client.get("/editions/?x=1")

    answer = asyncio.run(get())
    assert answer.status_code == 308 and answer.headers["location"] == "/editions?x=1"


def test_no_redirect_for_a_path_that_has_no_page(site: Site) -> None:
    assert site.client().get("/nothing-here/", headers={"host": "evil.example"}).status_code == 404
