"""feeds.toml: the shipped example is valid, and every problem names file, line and key."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from helpers import run_cli

from digest import config
from digest.cli import cli
from digest.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse(text, "feeds.toml")
    return info.value.problems


def test_shipped_example_is_valid() -> None:
    settings = config.load(ROOT / "feeds.toml")
    assert settings.digest.title == "Health IT weekly"
    kinds = {type(s).__name__ for s in settings.sources}
    assert {"FeedSource", "HashtagSource"} <= kinds
    assert any(getattr(s, "feed", "") == "https://www.healthcareittoday.com/feed/" for s in settings.sources)
    tags = {s.hashtag for s in settings.sources if isinstance(s, config.HashtagSource)}
    assert {"HITsm", "HealthIT", "FHIR"} <= tags


def test_defaults_make_an_empty_file_valid() -> None:
    settings = config.parse("", "feeds.toml")
    assert settings.digest.window_days == 7
    assert settings.collect.max_bytes > 0
    assert settings.mail.mode.startswith("outbox")
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("digest.db")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[digest]\ntitel = "x"\n', "feeds.toml:2: digest.titel: unknown key 'titel' (did you mean 'title'?)"),
        ('[digest]\ntimezone = "Mars/Base"\n', "feeds.toml:2: digest.timezone: unknown time zone 'Mars/Base'"),
        ('[digest]\nsend_on = "someday"\n', "feeds.toml:2: digest.send_on: 'someday' is not a weekday and time"),
        ("[digest]\nwindow_days = 0\n", "feeds.toml:2: digest.window_days: Input should be greater than or equal to 1"),
        (
            '[[sources]]\nfeed = "https://a.org/f"\n\n[[sources]]\nfeed = "https://b.org/f"\n\n'
            '[[sources]]\nfeed = "ftp://c.org/f"\n',
            "feeds.toml:8: sources[3].feed: not an http(s) URL",
        ),
        ('[[sources]]\nmastodon = "nobody"\n', "feeds.toml:2: sources[1].mastodon: not a Mastodon handle"),
        ('[[sources]]\nhashtag = "two words"\n', "feeds.toml:2: sources[1].hashtag: not a hashtag"),
        (
            '[[sources]]\nname = "x"\n',
            "feeds.toml:1: sources[1]: needs exactly one of feed, mastodon, hashtag, bluesky",
        ),
        (
            '[[sources]]\nfeed = "https://a.org/f"\nmastodon = "@a@b.org"\n',
            "feeds.toml:1: sources[1]: needs exactly one of feed, mastodon, hashtag, bluesky (found feed and mastodon)",
        ),
        ('[[sources]]\nfeed = "https://a.org/f"\nfed = 1\n', "feeds.toml:3: sources[1].fed: unknown key 'fed'"),
        ("[colect]\nx = 1\n", "feeds.toml:1: colect: unknown key 'colect' (did you mean 'collect'?)"),
        (
            '[mail]\nsmtp = "smtp://u:hunter2@mail.example.org"\n',
            "feeds.toml:2: mail.smtp: the SMTP password must come",
        ),
        ('[bluesky]\nhandle = "a.bsky.social"\napp_password = "abcd"\n', "feeds.toml:3: bluesky.app_password: secrets"),
        ("[digest\n", "feeds.toml:1: invalid TOML"),
        # tomllib says "at end of document" for a value left open on the last line: that line, not line 1
        ('[digest]\ntitle = "x"\n\n[[topics]]\nname = "a"\nkeywords = ["a", \n', "feeds.toml:6: invalid TOML"),
        ('[[sources]]\nfeed = "http://127.0.0.1:99999/x"\n', "feeds.toml:2: sources[1].feed: port '99999' is not a"),
        (
            '[[topics]]\nname = "A"\n\n[[subscribers]]\nemail = "r@example.org"\ntopics = ["B"]\n',
            "feeds.toml:6: subscribers[1].topics: unknown topic 'B'",
        ),
        (
            '[[sources]]\nhashtag = "FHIR"\nnetworks = ["bluesky"]\n',
            "feeds.toml:3: sources[1].networks: Bluesky hashtag search needs a login",
        ),
    ],
)
def test_each_problem_names_file_line_and_key(text: str, expected: str) -> None:
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_a_misspelt_source_kind_is_named_first_with_its_line_and_a_did_you_mean() -> None:
    text = '[digest]\ntitle = "x"\n\n[[sources]]\nfeeed = "https://a.org/f"\nnaem = "A"\n'
    assert problems(text) == [
        "feeds.toml:5: sources[1].feeed: unknown key 'feeed' (did you mean 'feed'?)",
        "feeds.toml:6: sources[1].naem: unknown key 'naem' (did you mean 'name'?)",
        "feeds.toml:4: sources[1]: needs exactly one of feed, mastodon, hashtag, bluesky (found none)",
    ]


def test_a_bad_subscriber_address_is_told_in_words_not_a_pattern() -> None:
    [problem] = problems('[[subscribers]]\nemail = "ana@example"\n')
    assert problem.startswith("feeds.toml:2: subscribers[1].email: The part after the @-sign is not valid")
    assert "pattern" not in problem
    parsed = config.parse('[[subscribers]]\nemail = "jörg@bücher.example"\n', "feeds.toml")
    assert parsed.subscribers[0].email == "jörg@bücher.example"  # a UTF-8 local part is fine


def test_several_problems_are_all_reported_in_line_order() -> None:
    found = problems('[digest]\ntitel = "x"\ntimezone = "Nowhere"\n\n[[sources]]\nfeed = "nope"\n')
    assert [p.split(":")[1] for p in found] == ["2", "3", "6"]


def test_secret_from_environment_is_expanded_and_missing_one_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    text = '[mail]\nsmtp = "smtp://u:${SMTP_PASSWORD}@mail.example.org:587"\n'
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    assert problems(text) == ["feeds.toml:2: mail.smtp: environment variable SMTP_PASSWORD is not set"]
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    assert config.expand_env(config.parse(text).mail.smtp or "") == "smtp://u:s3cret@mail.example.org:587"


def test_database_reads_variables_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    text = '[digest]\ndatabase = "postgresql+psycopg://digest:${DIGEST_DB_PASSWORD}@db.example.org/${DIGEST_DB}"\n'
    monkeypatch.delenv("DIGEST_DB_PASSWORD", raising=False)
    monkeypatch.setenv("DIGEST_DB", "digest")
    assert problems(text) == ["feeds.toml:2: digest.database: environment variable DIGEST_DB_PASSWORD is not set"]
    monkeypatch.setenv(
        "DIGEST_DB_PASSWORD", "p@ss/w:rd"
    )  # percent-encoded inside user:password@, so it stays one password
    url = config.parse(text).database_url
    assert url == "postgresql+psycopg://digest:p%40ss%2Fw%3Ard@db.example.org/digest"
    assert sa.engine.make_url(url).password == "p@ss/w:rd"
    monkeypatch.setenv("STATE_DIR", "/var/lib/digest")
    assert (
        config.parse('[digest]\ndatabase = "${STATE_DIR}/digest.db"\n').database_url
        == "sqlite:////var/lib/digest/digest.db"
    )


@pytest.mark.parametrize("password", ["${DIGEST_DB_PASSWORD}", "in-the-file"])
def test_check_never_prints_the_database_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], password: str
) -> None:
    monkeypatch.setenv("DIGEST_DB_PASSWORD", "from-the-env")
    with socket.socket() as sock:  # a port nothing listens on: the store cannot be read, and check says so
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "feeds.toml"
    path.write_text(f'[digest]\ndatabase = "postgresql+psycopg://digest:{password}@127.0.0.1:{port}/digest"\n')
    assert run_cli("--config", str(path), "check") == 0
    out, err = capsys.readouterr()
    assert "from-the-env" not in out + err and "in-the-file" not in out + err
    assert f"store:       postgresql+psycopg://digest:***@127.0.0.1:{port}/digest" in out
    assert "the store cannot be read: postgresql+psycopg://digest:***@" in out
    assert ("DIGEST_DB_PASSWORD" in out) == password.startswith("$")


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found; `digest init` writes a starter one there"):
        config.load(tmp_path / "nope.toml")


def test_check_prints_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(ROOT / "feeds.toml"), "check"])
    assert result.exit_code == 0, result.output
    assert "sources:" in result.output and "hashtag" in result.output
    assert "mail:        outbox" in result.output


def test_check_exits_2_with_one_line_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('[digest]\ntitel = "x"\n\n[[sources]]\nfeed = "ftp://x"\n', encoding="utf-8")
    assert run_cli("--config", str(path), "check") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"{path}:2: digest.titel: unknown key 'titel' (did you mean 'title'?)",
        f"{path}:5: sources[1].feed: not an http(s) URL",
    ]


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[digest]\ntitle = "Elsewhere"\n', encoding="utf-8")
    monkeypatch.setenv("DIGEST_CONFIG", str(path))
    assert config.load().digest.title == "Elsewhere"


MODELS = (
    config.DigestSettings,
    config.CollectSettings,
    config.BlueskySettings,
    config.FeedSource,
    config.MastodonSource,
    config.HashtagSource,
    config.BlueskySource,
    config.Topic,
    config.Subscriber,
    config.MailSettings,
    config.SubscriptionSettings,
    config.NoiseSettings,
    config.ChatSettings,
)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_setting_has_help_text_and_is_in_the_readme(model: type) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, field in model.model_fields.items():
        key = field.alias or name
        assert field.description, f"{model.__name__}.{key} has no description"
        assert f"`{key}`" in readme, f"README does not document {model.__name__}.{key}"


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    import click

    def names(group: click.Group, prefix: str) -> list[str]:
        found = []
        for name, command in group.commands.items():
            found.append(f"{prefix}{name}")
            if isinstance(command, click.Group):
                found += names(command, f"{prefix}{name} ")
        return found

    for name in names(cli, ""):
        assert f"digest {name}" in readme, f"README does not document `digest {name}`"
