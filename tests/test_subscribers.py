"""Subscriber management for the curator (library and `digest subscribers ...`), the suppression list,
and migration 4 of the store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import NOW, run_cli
from webclient import CONFIG, SECRET

from digest import config
from digest import subscribers as subs
from digest.models import Recipient
from digest.ratelimit import SlidingWindow
from digest.store import SCHEMA_VERSION, Store, metadata, schema_info, suppression_hash
from digest.store import subscribers as subscribers_table

LISTED = '\n[[subscribers]]\nemail = "listed@example.org"\nname = "Lee"\ntopics = ["Health IT"]\n'


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(CONFIG + LISTED, encoding="utf-8")
    return path


def cli(config_path: Path, *args: str) -> int:
    return run_cli("--config", str(config_path), *args)


def listed(config_path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert cli(config_path, "subscribers", "list", "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_normalize_email() -> None:
    assert subs.normalize_email("  Ana.Smith+digest@Example.ORG ") == "ana.smith+digest@example.org"
    assert subs.normalize_email("o'neil@example.org") == "o'neil@example.org"
    assert subs.normalize_email("ana@bücher.example") == "ana@xn--bcher-kva.example"
    assert subs.normalize_email("ana@example.org.") == "ana@example.org"
    assert subs.normalize_email("Jörg@Bücher.example") == "jörg@xn--bcher-kva.example"  # SMTPUTF8
    for bad in (
        "ana@example.org\r\nBcc: x@y.org",
        "a b@c.org",
        "a@b",
        "a@@b.org",
        "a@b.c_d.org",
        "",
        "a@" + "b" * 64 + ".org",
    ):
        with pytest.raises(subs.InvalidInput):
            subs.normalize_email(bad)


def test_parse_topics(config_path: Path) -> None:
    settings = config.load(config_path)
    assert subs.parse_topics(settings, ["Health IT"]) == ("Health IT",)
    assert subs.parse_topics(settings, ["Health IT", "Interoperability", "Health IT"]) is None  # all: every topic
    with pytest.raises(subs.InvalidInput, match="no topic called 'health it'"):
        subs.parse_topics(settings, ["health it"])  # names are exact
    with pytest.raises(subs.InvalidInput, match="at least one"):
        subs.parse_topics(settings, [" "])


def test_list_json_shape_includes_the_config_subscribers(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config_path, "subscribers", "add", "ana@example.org", "--confirmed") == 0
    assert listed(config_path, capsys) == [
        {"email": "ana@example.org", "state": "confirmed", "topics": ["Interoperability", "Health IT"]},
        {"email": "listed@example.org", "state": "confirmed", "topics": ["Health IT"]},
    ]


def test_add_pending_sends_a_confirmation_to_the_outbox(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config_path, "subscribers", "add", "Ben@Example.org", "--topics", "Health IT") == 0
    assert "ben@example.org: pending; a confirmation email was sent" in capsys.readouterr().out
    message = (config_path.parent / "outbox" / "confirmations" / "ben@example.org.eml").read_text()
    assert "Subject: Confirm your subscription to Health IT weekly" in message
    assert "https://digest.example.org/confirm/" in message
    [ben] = [r for r in listed(config_path, capsys) if r["email"] == "ben@example.org"]
    assert ben == {"email": "ben@example.org", "state": "pending", "topics": ["Health IT"]}


def test_add_refuses_unknown_topics_and_bad_addresses(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config_path, "subscribers", "add", "ben@example.org", "--topics", "Gardening") == 2
    assert "There is no topic called 'Gardening'" in capsys.readouterr().err
    assert cli(config_path, "subscribers", "add", "not-an-address") == 2  # bad usage, as the README says
    assert capsys.readouterr().err.strip() == (
        "error: 'not-an-address': An email address must have an @-sign."  # email-validator's words
    )


def test_remove_suppresses_and_add_import_and_config_respect_it(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(config_path, "subscribers", "add", "ana@example.org", "--confirmed") == 0
    assert cli(config_path, "subscribers", "remove", "ana@example.org") == 0
    assert cli(config_path, "subscribers", "remove", "listed@example.org") == 0
    assert cli(config_path, "subscribers", "remove", "never@example.org", "--suppress") == 0
    assert "never@example.org: was not subscribed; suppressed" in capsys.readouterr().out
    assert cli(config_path, "subscribers", "add", "ana@example.org", "--confirmed") == 1
    assert "unsubscribed on" in capsys.readouterr().err
    sheet = tmp_path / "people.csv"
    sheet.write_text("email,topics\nana@example.org,Health IT\nnever@example.org,\nnew@example.org,Health IT\n")
    assert cli(config_path, "subscribers", "import", str(sheet), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"added": 1, "existing": 0, "suppressed": 2, "invalid": []}
    people = {r["email"]: r["state"] for r in listed(config_path, capsys)}
    # the address listed in feeds.toml is shown as unsubscribed and never mailed again
    assert people == {"listed@example.org": "unsubscribed", "new@example.org": "confirmed"}
    settings = config.load(config_path)
    with Store.open(settings.database_url) as store:
        assert store.subscriber_counts() == {"pending": 0, "confirmed": 1, "unsubscribed": 3, "bouncing": 0}
        with store.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(sa.text("SELECT * FROM suppressions"))]
        assert all("@" not in str(value) for row in rows for value in row)  # only hashes and dates


def test_removing_an_address_that_never_subscribed_says_so_and_blocks_nothing(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(config_path, "subscribers", "remove", "Never@Example.org") == 0
    assert capsys.readouterr().out.strip() == (
        "never@example.org: was not subscribed; nothing changed (--suppress blocks it from imports and adds)"
    )
    assert cli(config_path, "subscribers", "add", "never@example.org", "--confirmed") == 0  # not suppressed
    assert cli(config_path, "subscribers", "remove", "never@example.org") == 0
    assert "never@example.org: unsubscribed" in capsys.readouterr().out
    assert cli(config_path, "subscribers", "remove", "never@example.org") == 0
    assert "never@example.org: had already unsubscribed; nothing changed" in capsys.readouterr().out
    assert cli(config_path, "subscribers", "remove", "not an address") == 2
    assert capsys.readouterr().err.startswith("error: 'not an address': ")


def test_import_reports_bad_rows_by_line_and_goes_on(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "people.csv"
    sheet.write_text(
        "Email,Topics,Name\n"
        "ana@example.org,Health IT|Interoperability,Ana\n"
        "bad address,,\n"
        "ben@example.org,Gardening,\n"
        "chi@example.org,Health IT,Chi\n"
        "ana@example.org,,\n",
        encoding="utf-8",
    )
    assert cli(config_path, "subscribers", "import", str(sheet)) == 0
    captured = capsys.readouterr()
    assert f"{sheet}:3: An email address cannot contain spaces" in captured.err
    assert f"{sheet}:4: There is no topic called 'Gardening'" in captured.err
    assert "added 2, already subscribed 1, skipped as unsubscribed 0, invalid 2" in captured.out
    settings = config.load(config_path)
    with Store.open(settings.database_url) as store:
        assert store.subscriber("ana@example.org") == Recipient("ana@example.org", "Ana", None, "confirmed", "import")
        assert store.subscriber("chi@example.org").topics == ("Health IT",)  # type: ignore[union-attr]


def test_import_without_an_email_column_is_an_error(config_path: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "people.csv"
    sheet.write_text("address,topics\nana@example.org,\n")
    assert cli(config_path, "subscribers", "import", str(sheet)) == 1


def test_export_then_import_round_trips(config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config_path, "subscribers", "add", "ana@example.org", "--confirmed", "--topics", "Health IT") == 0
    assert cli(config_path, "subscribers", "add", "ben@example.org", "--confirmed") == 0
    out = tmp_path / "out.csv"
    assert cli(config_path, "subscribers", "export", str(out)) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["email"], r["topics"], r["state"]) for r in rows] == [
        ("ana@example.org", "Health IT", "confirmed"),
        ("ben@example.org", "Interoperability|Health IT", "confirmed"),
        ("listed@example.org", "Health IT", "confirmed"),
    ]
    other = tmp_path / "other"
    other.mkdir()
    (other / "feeds.toml").write_text(CONFIG, encoding="utf-8")
    assert cli(other / "feeds.toml", "subscribers", "import", str(out)) == 0
    assert [(r["email"], r["topics"]) for r in listed(other / "feeds.toml", capsys)] == [
        ("ana@example.org", ["Health IT"]),
        ("ben@example.org", ["Interoperability", "Health IT"]),
        ("listed@example.org", ["Health IT"]),
    ]


def test_check_prints_counts_by_state(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config_path, "check") == 0
    assert "subscribers: 1 listed in the file\n" in capsys.readouterr().out  # no store yet: none created
    assert not (config_path.parent / "digest.db").exists()
    cli(config_path, "subscribers", "add", "ana@example.org", "--confirmed")
    cli(config_path, "subscribers", "add", "ben@example.org")
    cli(config_path, "subscribers", "remove", "chi@example.org", "--suppress")
    capsys.readouterr()
    assert cli(config_path, "check") == 0
    assert "in the store: 1 confirmed, 1 pending, 1 unsubscribed, 0 bouncing" in capsys.readouterr().out


def test_migration_4_keeps_only_hashes_of_unsubscribed_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    old_tables = [t for name, t in metadata.tables.items() if name not in ("suppressions", "jobs")]
    with engine.begin() as conn:
        metadata.create_all(conn, tables=old_tables)
        conn.execute(schema_info.insert().values(version=3))
        for email, status in (("gone@example.org", "unsubscribed"), ("here@example.org", "confirmed")):
            conn.execute(
                subscribers_table.insert().values(
                    email=email,
                    name="",
                    topics=None,
                    status=status,
                    origin="web",
                    bounces=0,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    engine.dispose()
    with Store.open(url) as store:
        assert store.version == SCHEMA_VERSION >= 4
        assert [r.email for r in store.subscribers()] == ["here@example.org"]
        assert store.suppressed("GONE@example.org") is not None
        store.sync_config_subscribers([Recipient("gone@example.org"), Recipient("new@example.org")], NOW)
        assert [r.email for r in store.subscribers()] == ["here@example.org", "new@example.org"]


def test_suppression_hash_is_case_and_space_insensitive_and_salted() -> None:
    import hashlib

    assert suppression_hash(" Ana@Example.org ") == suppression_hash("ana@example.org")
    assert suppression_hash("ana@example.org") != hashlib.sha256(b"ana@example.org").hexdigest()


def test_sliding_window_limits_then_lets_in_again() -> None:
    now = [0.0]
    window = SlidingWindow(limit=2, window=60, clock=lambda: now[0], max_keys=3)
    assert window.hit("a") is None and window.hit("a") is None
    assert window.hit("a") == 60
    now[0] = 30
    assert window.hit("a") == 30  # refused hits are not counted
    now[0] = 60.5
    assert window.hit("a") is None
    for key in ("b", "c", "d", "e"):
        window.hit(key)
    assert len(window._hits) == 3  # bounded memory
