"""The mailer against a real SMTP server (aiosmtpd on 127.0.0.1) and the outbox: every confirmed
subscriber gets exactly one message a week, through flaky servers, refusals and crashes."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import NOW, SEND_AT_NOW, make_post, run_cli
from smtpserver import SmtpSink

from digest import clock
from digest.config import Settings
from digest.pipeline import send_week
from digest.store import Store

ROOT = Path(__file__).resolve().parents[1]
TOPICS = """
[[topics]]
name = "Interoperability"
description = "Exchanging health data between systems: HL7, FHIR, APIs, health information exchange."
keywords = ["FHIR", "HL7", "interoperability", "API"]

[[topics]]
name = "Health IT"
description = "Electronic health records and clinical systems."
keywords = ["EHR", "EMR", "electronic health record", "Epic"]
"""
POSTS = [
    ("FHIR R6 ballot opens: what changes for implementers", "FHIR"),
    ("Mapping HL7 v2 ADT messages to FHIR Encounter resources", "FHIR"),
    ("Bulk FHIR export at forty million resources a night", "FHIR"),
    ("Our EHR upgrade weekend, hour by hour", "EHR"),
    ("Epic go-live lessons from a rural hospital EHR team", "EHR"),
    (".A line that starts with a dot must survive SMTP\n.and so must this one", "FHIR"),
    ("Lunch today: tacos from the food truck, delicious", ""),
    ("The dahlias in the garden are finally blooming", ""),
]


def write_config(tmp_path: Path, mail: str, subscribers: list[str], extra: str = "") -> Path:
    people = "".join(f'[[subscribers]]\nemail = "{e}"\nname = "Reader {i}"\n\n' for i, e in enumerate(subscribers))
    path = tmp_path / "feeds.toml"
    path.write_text(
        f'[digest]\ntitle = "Health IT weekly"\n{SEND_AT_NOW}\n\n{mail}\n{extra}\n{TOPICS}\n{people}', encoding="utf-8"
    )
    return path


def seed_posts(settings: Settings, weeks_back: int = 0) -> None:
    """The `POSTS`, in the edition completed at NOW (or the one ``weeks_back`` before it)."""
    with Store.open(settings.database_url) as store:
        for i, (text, tag) in enumerate(POSTS):
            post = make_post(
                f"https://posts.example/{weeks_back}/{i}" if weeks_back else f"https://posts.example/{i}",
                text=text,
                html=f"<p>{text}</p>",
                tags=(tag,) if tag else (),
                published=NOW - timedelta(hours=3 + i, weeks=weeks_back),
            )
            store.add_posts("feed:https://posts.example/feed", [post])


def smtp_section(
    port: int, *, tls: str = "none", user: str = "", ca: str = "", rate: int = 100_000, connections: int = 0
) -> str:
    login = f"{user}:${{SMTP_PASSWORD}}@" if user else ""
    lines = [
        f'[mail]\nfrom = "Health IT Weekly <digest@hit.example>"\nsmtp = "smtp://{login}127.0.0.1:{port}"',
        f'tls = "{tls}"\nrate = {rate}',
    ]
    if connections:
        lines.append(f"connections = {connections}")
    if ca:
        lines.append(f'ca_file = "{ca}"')
    return "\n".join(lines) + "\n"


def setup(tmp_path: Path, mail: str, people: list[str], extra: str = "") -> Settings:
    from digest import config

    settings = config.load(write_config(tmp_path, mail, people, extra))
    seed_posts(settings)
    return settings


def send(settings: Settings, **kwargs):
    with Store.open(settings.database_url) as store:
        return send_week(settings, store, now=NOW, **kwargs)


PEOPLE = ["ana@example.org", "ben@example.org", "chi@example.org"]
SUBSCRIPTION = '[subscription]\npublic_url = "https://digest.example.org"\nsecret = "${DIGEST_SECRET}"\n'


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-0123456789-abcdefghijkl")
    monkeypatch.setenv("SMTP_PASSWORD", "pa55word")


def test_messages_parse_back_with_both_parts_and_every_header(tmp_path: Path) -> None:
    sink = SmtpSink()
    with sink.running() as port:
        settings = setup(tmp_path, smtp_section(port), PEOPLE, SUBSCRIPTION)
        report = send(settings)
    assert sorted(report.sent) == PEOPLE and not report.failed
    assert sink.by_recipient() == dict.fromkeys(PEOPLE, 1)
    msg = next(m for m in sink.messages if m["To"] == "ana@example.org")
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "FHIR R6 ballot" in text and "FHIR R6 ballot" in html and "Hi Reader 0," in text
    assert "tacos" not in text.lower()  # off-topic, left out
    assert msg["From"] == "Health IT Weekly <digest@hit.example>" and msg["Subject"].startswith("Health IT weekly")
    assert msg["Message-ID"].startswith("<") and msg["Date"]
    assert msg["List-Id"] == "Health IT weekly <health-it-weekly.hit.example>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click, mailto = [part.strip(" <>") for part in msg["List-Unsubscribe"].split(",")]
    assert one_click.startswith("https://digest.example.org/unsubscribe/") and mailto.startswith(
        "mailto:digest@hit.example"
    )
    assert one_click in text and one_click.replace("&", "&amp;") in html  # the footer's link is the same
    others = [m["List-Unsubscribe"] for m in sink.messages]
    assert len(set(others)) == 3  # each subscriber's own signed link
    assert "%%" not in text and "%%" not in html
    assert all(len(line) <= 998 for raw in sink.raw for line in raw.split(b"\r\n"))


def test_rerun_sends_nothing_twice(tmp_path: Path) -> None:
    sink = SmtpSink()
    with sink.running() as port:
        settings = setup(tmp_path, smtp_section(port), PEOPLE)
        send(settings)
        again = send(settings)
    assert again.sent == [] and sorted(again.already_sent) == PEOPLE
    assert sink.by_recipient() == dict.fromkeys(PEOPLE, 1)


def test_starttls_and_auth(tmp_path: Path) -> None:
    sink = SmtpSink(tls=True, auth=("digest", "pa55word"), workdir=tmp_path)
    with sink.running() as port:
        mail = smtp_section(port, tls="starttls", user="digest", ca=sink.ca_file, connections=1)
        settings = setup(tmp_path, mail, PEOPLE)
        report = send(settings)
    assert sorted(report.sent) == PEOPLE
    assert sink.logins == ["digest"]  # one connection, reused for every message


def test_several_connections_at_once_each_reused_and_everyone_mailed_once(tmp_path: Path) -> None:
    people = [f"reader{i:02d}@example.org" for i in range(30)]
    sink = SmtpSink(tls=True, auth=("digest", "pa55word"), workdir=tmp_path, meet=3)
    with sink.running() as port:
        mail = smtp_section(port, tls="starttls", user="digest", ca=sink.ca_file, connections=3)
        settings = setup(tmp_path, mail, people)
        report = send(settings)
        with Store.open(settings.database_url) as store:
            statuses = {d.status for d in store.deliveries("2026-W47")}
    assert sink.met  # three connections were in a transaction at the same moment
    assert sink.logins == ["digest"] * 3  # each logged in once and reused for its share of the 30
    assert sink.by_recipient() == dict.fromkeys(people, 1)
    assert sorted(report.sent) == people and statuses == {"sent"}


def test_wrong_password_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.errors import DigestError

    monkeypatch.setenv("SMTP_PASSWORD", "wrong")
    sink = SmtpSink(tls=True, auth=("digest", "pa55word"), workdir=tmp_path)
    with sink.running() as port:
        settings = setup(tmp_path, smtp_section(port, tls="starttls", user="digest", ca=sink.ca_file), PEOPLE)
        with pytest.raises(DigestError, match="login refused: 535"):
            send(settings)
        with Store.open(settings.database_url) as store:
            assert {d.status for d in store.deliveries("2026-W47")} == {"queued"}  # nothing lost, all still to send


def test_flaky_server_still_delivers_each_message_exactly_once(tmp_path: Path) -> None:
    people = [f"reader{i}@example.org" for i in range(40)]
    sink = SmtpSink(flaky=0.3, drop=0.15, seed=7)
    with sink.running() as port:
        settings = setup(tmp_path, smtp_section(port), people)
        reports = [send(settings)]
        while reports[-1].deferred and len(reports) < 5:  # what a run could not hand over, the next one does
            reports.append(send(settings))
    assert sink.by_recipient() == dict.fromkeys(people, 1)
    assert sum(len(r.sent) for r in reports) == 40


def test_refused_recipient_is_recorded_and_bounces_add_up(tmp_path: Path) -> None:
    sink = SmtpSink(reject={"gone@example.org"})
    with sink.running() as port:
        settings = setup(tmp_path, smtp_section(port), [*PEOPLE, "gone@example.org"], "bounce_limit = 2\n")
        seed_posts(settings, weeks_back=1)
        seed_posts(settings, weeks_back=2)
        first = send(settings, week="2026-W45")
        assert [e for e, _ in first.failed] == ["gone@example.org"] and "550" in first.failed[0][1]
        assert sorted(first.sent) == PEOPLE
        with Store.open(settings.database_url) as store:
            failed = next(d for d in store.deliveries(first.week) if d.email == "gone@example.org")
            assert failed.status == "failed" and "No such user" in failed.error
            assert next(r for r in store.subscribers() if r.email == "gone@example.org").status == "confirmed"
        second = send(settings, week="2026-W46")  # the next hard bounce reaches the limit
        assert [e for e, _ in second.failed] == ["gone@example.org"]
        with Store.open(settings.database_url) as store:
            assert next(r for r in store.subscribers() if r.email == "gone@example.org").status == "bouncing"
        third = send(settings)
    assert "gone@example.org" not in [e for e, _ in third.failed] and third.recipients == 3


def test_server_down_leaves_everyone_queued_for_the_next_run(tmp_path: Path) -> None:
    sink = SmtpSink()
    with sink.running() as port:
        pass  # the port is free again: nothing listens
    settings = setup(tmp_path, smtp_section(port), PEOPLE)
    import digest.delivery

    original = digest.delivery.ATTEMPTS
    digest.delivery.ATTEMPTS = 1
    try:
        report = send(settings)
    finally:
        digest.delivery.ATTEMPTS = original
    assert report.sent == [] and len(report.deferred) == 3
    with Store.open(settings.database_url) as store:
        assert {d.status for d in store.deliveries(report.week)} == {"queued"}


def test_outbox_is_the_default_and_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "", PEOPLE)
    from digest import config as config_mod

    seed_posts(config_mod.load(config))
    assert run_cli("--config", str(config), "send", "--week", "2026-W47") == 0
    out = capsys.readouterr().out
    assert "messages written to" in out
    folder = tmp_path / "outbox" / "2026-W47"
    files = sorted(p.name for p in folder.iterdir())
    assert files == [f"{p}.eml" for p in PEOPLE]
    parsed = message_from_bytes((folder / "ana@example.org.eml").read_bytes(), policy=policy.default)
    assert parsed.get_body(("html",)) is not None and parsed["List-Unsubscribe"].startswith("<mailto:")
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert run_cli("--config", str(config), "send", "--week", "2026-W47", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sent"] == 0 and summary["skipped_already_sent"] == 3
    assert before == {p: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_without_subscription_pages_change_your_topics_asks_for_topics_not_to_unsubscribe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no [subscription] public_url the links are mails to the curator: "Change your topics" must not
    be the unsubscribe mail (a reader asking for other topics would be unsubscribed by whoever acts on it)."""
    config = write_config(tmp_path, '[mail]\nfrom = "Health IT weekly <digest@hit.example>"\n', PEOPLE)
    from digest import config as config_mod

    seed_posts(config_mod.load(config))
    assert run_cli("--config", str(config), "send", "--week", "2026-W47") == 0
    capsys.readouterr()
    sent = (tmp_path / "outbox" / "2026-W47" / "ana@example.org.eml").read_bytes()
    text = message_from_bytes(sent, policy=policy.default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    links = dict(re.findall(r"^(Change your topics|Unsubscribe): (\S+)$", text.replace("\r\n", "\n"), re.M))
    assert links["Unsubscribe"] == "mailto:digest@hit.example?subject=unsubscribe%20ana%40example.org"
    change = urlsplit(links["Change your topics"])
    asked = parse_qs(change.query)
    assert (change.scheme, change.path) == ("mailto", "digest@hit.example")
    assert asked["subject"] == ["change topics for ana@example.org"] and "unsubscribe" not in change.query
    assert asked["body"] == ["The topics I want (delete the others): Interoperability, Health IT"]


def test_dry_run_and_to(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sink = SmtpSink()
    with sink.running() as port:
        config = write_config(tmp_path, smtp_section(port), PEOPLE)
        from digest import config as config_mod

        seed_posts(config_mod.load(config))
        assert run_cli("--config", str(config), "send", "--week", "2026-W47", "--dry-run", "--json") == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["sent"] == 0 and summary["would_send"] == 3 and sink.messages == []
        assert summary["editions"] == [
            {"edition": "editions/2026-W47/interoperability+health-it", "recipients": sorted(PEOPLE)}
        ]
        assert run_cli("--config", str(config), "send", "--dry-run") == 0
        lines = capsys.readouterr().out.splitlines()
        assert "2026-W47: would send 3, skipped 0 already sent, failed 0, deferred 0; 3 confirmed subscribers" in lines
        assert f"  editions/2026-W47/interoperability+health-it -> 3 subscribers: {', '.join(sorted(PEOPLE))}" in lines
        assert run_cli("--config", str(config), "send", "--week", "2026-W47", "--to", "ben@example.org") == 0
        capsys.readouterr()
        assert run_cli("--config", str(config), "send", "--dry-run", "--json") == 0
        after = json.loads(capsys.readouterr().out)  # ben has it now: the dry run says so
        assert after["would_send"] == 2 and after["skipped_already_sent"] == 1
    assert sink.by_recipient() == {"ben@example.org": 1}


@pytest.mark.timeout(900)  # a hang guard above the test's own waits (up to 120 s a round, 300 s the last)
def test_killed_mid_batch_then_rerun_misses_nobody_and_names_every_duplicate(tmp_path: Path, store_url: str) -> None:
    """SIGKILL `digest send` at random points in a 300-subscriber batch, several times, then let it finish.

    What the design guarantees (delivery.py): nobody is missing; a subscriber gets a second copy only
    when a kill left their handover unconfirmed, that delivery is recorded as uncertain, and the copy
    carries the same Message-ID; so at most one duplicate per kill."""
    people = [f"r{i:03d}@example.org" for i in range(300)]
    sink = SmtpSink()
    rng = random.Random(2026)
    rounds = 6
    with sink.running() as port:
        config = write_config(tmp_path, smtp_section(port), people)
        config.write_text(config.read_text().replace("[digest]\n", f'[digest]\ndatabase = "{store_url}"\n', 1))
        from digest import config as config_mod

        settings = config_mod.load(config)
        seed_posts(settings)
        command = [sys.executable, "-m", "digest", "--config", str(config), "send", "--week", "2026-W47", "--json"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        assert subprocess.run([*command, "--dry-run"], env=env, capture_output=True).returncode == 0  # compose once
        kills = 0
        for round_ in range(rounds):
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            target = len(sink.messages) + rng.randint(5, 40)
            if round_ % 2 == 0:  # kill while the server is accepting message number `target`
                fired = threading.Event()

                def kill_at(
                    count: int,
                    target: int = target,
                    process: subprocess.Popen = process,
                    fired: threading.Event = fired,
                ) -> None:
                    if count >= target and not fired.is_set():
                        fired.set()
                        process.send_signal(signal.SIGKILL)

                sink.on_accept = kill_at
                process.wait(timeout=120)
                sink.on_accept = None
            else:  # kill at a random moment once this run is sending (not before it starts, not after it ends)
                started = len(sink.messages)
                deadline = time.monotonic() + 60
                while len(sink.messages) == started and process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.05))
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=60)
            kills += process.returncode == -signal.SIGKILL
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
        report = json.loads(final.stdout)
        with Store.open(settings.database_url) as store:
            rows = {d.email: d for d in store.deliveries("2026-W47")}
    assert kills == rounds  # the batch really was interrupted, every time
    counts = sink.by_recipient()
    assert sorted(counts) == people  # nobody missing
    assert {d.status for d in rows.values()} == {"sent"}
    twice = {email for email, n in counts.items() if n > 1}
    assert set(counts.values()) <= {1, 2} and len(twice) <= kills
    assert twice <= {email for email, d in rows.items() if d.uncertain}  # every duplicate was named uncertain
    ids: dict[str, set[str]] = {}
    for message, (_, rcpts) in zip(sink.messages, sink.envelopes, strict=True):
        ids.setdefault(rcpts[0], set()).add(str(message["Message-ID"]))
    assert all(len(ids[email]) == 1 for email in twice)  # the copy is its twin: the same Message-ID
    assert all(item["resent"] for item in report["uncertain"])
    assert {item["email"] for item in report["uncertain"]} <= {e for e, d in rows.items() if d.uncertain}


def test_lines_starting_with_a_dot_survive_smtp(tmp_path: Path) -> None:
    from digest.mail import Links, MessageTemplate, SmtpMessenger

    body = "first line\n.a line that starts with a dot\n..and two dots\n.\nlast"
    template = MessageTemplate.build(
        subject="dots",
        html="<p>x</p>",
        text=body,
        sender="a@hit.example",
        reply_to=None,
        list_id="l <l.hit.example>",
        date=NOW,
    )
    links = Links("https://u.example/u", "https://u.example/p", "https://u.example/u", "mailto:a@hit.example")
    sink = SmtpSink()
    with sink.running() as port:
        messenger = SmtpMessenger(f"smtp://127.0.0.1:{port}", "none")
        committed = []
        answer = messenger.push(
            "a@hit.example",
            "r@example.org",
            template.render("r@example.org", "<m@x>", links),
            lambda: committed.append(True),
        )
        messenger.close()
    assert answer.startswith("250") and committed == [True]
    assert sink.messages[0].get_body(("plain",)).get_content().replace("\r\n", "\n") == body + "\n"


def test_dkim_signature_verifies(tmp_path: Path) -> None:
    import base64

    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "dkim.pem").write_bytes(pem)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    sink = SmtpSink()
    with sink.running() as port:
        settings = setup(tmp_path, smtp_section(port), PEOPLE, 'dkim_key = "dkim.pem"\ndkim_selector = "wk"\n')
        send(settings)
    lookups = []

    def dns(name: bytes, timeout: int = 5) -> bytes:  # stands in for DNS: this machine has none to ask
        lookups.append(name)
        return record if name == b"wk._domainkey.hit.example." else b""

    assert len(sink.raw) == 3
    assert all(dkim.verify(raw, dnsfunc=dns) for raw in sink.raw)
    assert set(lookups) == {b"wk._domainkey.hit.example."}
    tampered = sink.raw[0].replace(b"FHIR", b"FHIX", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_digest_run_end_to_end_over_http_and_smtp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The weekly job from a feed served on 127.0.0.1 to a message at a real SMTP server, then the outbox default."""
    from email.utils import format_datetime

    from httpserver import Response, TestServer

    fresh = format_datetime(clock.now() - timedelta(hours=5), usegmt=True)  # `digest run` reads the clock
    feed = f"""<rss version="2.0"><channel><title>Interop notes</title>
      <item><guid>https://n.example/1</guid><title>FHIR R6 ballot opens for comment</title><pubDate>{fresh}</pubDate></item>
      <item><guid>https://n.example/2</guid><title>HL7 v2 to FHIR mapping notes for ADT feeds</title><pubDate>{fresh}</pubDate></item>
      <item><guid>https://n.example/3</guid><title>Lunch: tacos and salsa at the food truck</title><pubDate>{fresh}</pubDate></item>
    </channel></rss>""".encode()
    with TestServer() as web:
        web.route("/feed.xml", Response(feed, headers={"Content-Type": "application/rss+xml"}))
        source = f'[[sources]]\nfeed = "{web.url("/feed.xml")}"\n'
        sink = SmtpSink()
        with sink.running() as port:
            smtp_dir = tmp_path / "smtp"
            smtp_dir.mkdir()
            config = write_config(smtp_dir, smtp_section(port), PEOPLE, source)
            assert run_cli("--config", str(config), "run", "--json") == 0
            summary = json.loads(capsys.readouterr().out)
        assert summary["collect"]["new_posts"] == 3 and summary["send"]["sent"] == 3
        assert sink.by_recipient() == dict.fromkeys(PEOPLE, 1)
        body = sink.messages[0].get_body(("plain",)).get_content()
        assert "FHIR R6 ballot" in body and "tacos" not in body
        outbox_dir = tmp_path / "outbox-default"
        outbox_dir.mkdir()
        config = write_config(outbox_dir, "", PEOPLE, source)
        assert run_cli("--config", str(config), "run") == 0
        assert "messages written to" in capsys.readouterr().out
    assert len(list((outbox_dir / "outbox").glob("*/*.eml"))) == 3


def test_an_address_with_a_utf8_local_part_is_sent_with_smtputf8(tmp_path: Path) -> None:
    sink = SmtpSink()
    with sink.running() as port:
        settings = setup(tmp_path, smtp_section(port), ["jörg@bücher.example", "ana@example.org"])
        result = send(settings)
    assert not result.failed, result.failed
    assert sorted(sink.by_recipient()) == ["ana@example.org", "jörg@xn--bcher-kva.example"]
    [message] = [m for m in sink.messages if "j" in str(m["To"]) and "ana" not in str(m["To"])]
    assert "jörg@" in str(message["To"])


def test_a_utf8_local_part_on_a_server_without_smtputf8_is_one_clear_failure(tmp_path: Path) -> None:
    sink = SmtpSink(smtputf8=False)
    with sink.running() as port:
        settings = setup(tmp_path, smtp_section(port), ["jörg@bücher.example", "ana@example.org"])
        result = send(settings)
    assert sink.by_recipient() == {"ana@example.org": 1}
    [failure] = result.failed
    assert "SMTPUTF8" in failure[1] and "\n" not in failure[1]
