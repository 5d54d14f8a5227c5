"""Secrets that are secret: an empty or short signing secret, an empty ``${VAR}`` and a bad SMTP URL
are refused by `digest check` (exit 2, naming the key and the fix) and by every command that loads
the configuration, `serve` and `send` among them, before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import NOW, run_cli

from digest.models import Recipient
from digest.store import Store
from digest.tokens import make_token

SUBSCRIPTION = '[subscription]\npublic_url = "https://digest.example.org"\nsecret = "${DIGEST_SECRET}"\n'
GOOD_SECRET = "k3J9x-pQ2mZr8vT1yW6nB4cF7hL0sD5aE2gU9iO3"


def write_config(tmp_path: Path, body: str = SUBSCRIPTION) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(body, encoding="utf-8")
    return path


def digest(config: Path, *argv: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command in a child process (a server that wrongly starts is stopped by ``timeout``)."""
    return subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_empty_secret_cannot_forge_an_unsubscribe_link(tmp_path: Path) -> None:
    """The issue's attack: with ``DIGEST_SECRET=""`` a token signed with the empty key unsubscribed
    a real subscriber. Now `serve` refuses to start, so no forged link reaches a running app."""
    config = write_config(tmp_path)
    with Store.open(f"sqlite:///{tmp_path / 'digest.db'}") as store:
        store.add_subscriber(Recipient("ana@example.org"), NOW)
    forged = make_token("", "unsubscribe", "ana@example.org")
    with socket.socket() as probe:  # a free port, should serve wrongly start
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    try:
        served = digest(config, "serve", "--no-schedule", "--port", port, env={"DIGEST_SECRET": ""}, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve started with an empty secret; /unsubscribe/{forged} would work")
    assert served.returncode == 2
    assert "subscription.secret: DIGEST_SECRET is empty: anyone could forge subscriber links" in served.stderr
    assert "Traceback" not in served.stderr
    with Store.open(f"sqlite:///{tmp_path / 'digest.db'}") as store:
        assert [r.email for r in store.subscribers()] == ["ana@example.org"]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "DIGEST_SECRET is empty"),
        ("x", "DIGEST_SECRET is 1 characters long"),
        ("0123456789abcdef0123456789abcde", "DIGEST_SECRET is 31 characters long"),
        ("ab" * 20, "DIGEST_SECRET repeats 2 characters"),
    ],
)
def test_check_refuses_a_weak_secret_and_says_how_to_make_one(
    tmp_path: Path, secret: str, problem: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    monkeypatch.setenv("DIGEST_SECRET", secret)
    assert run_cli("--config", str(config), "check") == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"{config}:3: subscription.secret: {problem}"), line
    assert "at least 32 random characters" in line
    assert "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'" in line
    for command in (("send", "--dry-run"), ("subscribers", "add", "bo@example.org")):
        assert run_cli("--config", str(config), *command) == 2, command


def test_a_good_secret_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", GOOD_SECRET)
    assert run_cli("--config", str(write_config(tmp_path)), "check") == 0


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('[mail]\nsmtp = "smtp://digest:${SMTP_PASSWORD}@mail.example.org:587"\n', "mail.smtp"),
        ('[bluesky]\nhandle = "me.bsky.social"\napp_password = "${SMTP_PASSWORD}"\n', "bluesky.app_password"),
    ],
)
def test_an_empty_variable_is_refused(
    tmp_path: Path, body: str, key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "")
    config = write_config(tmp_path, body)
    assert run_cli("--config", str(config), "check") == 2
    assert f"{key}: environment variable SMTP_PASSWORD is set but empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("smtp", "problem"),
    [
        ("smtp://mail.example.org:abc", "mail.smtp: port 'abc' is not a number from 1 to 65535"),
        ("smtp://mail.example.org:${SMTP_PORT}", "mail.smtp: port 'twenty-five' is not a number"),
        ("http://mail.example.org", "mail.smtp: http://mail.example.org: use smtp://user:password@host:port"),
    ],
)
def test_a_bad_smtp_url_is_caught_by_check_and_send(tmp_path: Path, smtp: str, problem: str) -> None:
    config = write_config(tmp_path, f'[mail]\nsmtp = "{smtp}"\n')
    env = {"SMTP_PORT": "twenty-five"}
    for argv in (("check",), ("send",), ("send", "--json")):
        done = digest(config, *argv, env=env)
        assert done.returncode == 2, (argv, done.stderr)
        assert problem in done.stderr and "Traceback" not in done.stderr, done.stderr
