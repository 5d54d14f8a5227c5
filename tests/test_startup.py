"""Start-up stays light: `digest --version`, `--help` and `check` run without importing the libraries
only other commands need (the network clients, the parser, the filter's maths, templates, the database,
the web server). Not timed (bench/startup.py measures CPU against `python -c pass`): each command runs in
a fresh interpreter that reports what `sys.modules` held when it finished, so a top-level import that
creeps back fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import NOW, make_post

# what --version, --help and check must never load
HEAVY = (
    "aiohttp",
    "feedparser",
    "httpx",
    "jinja2",
    "lxml",
    "numpy",
    "premailer",
    "scipy",
    "sklearn",
    "sqlalchemy",
    "starlette",
    "uvicorn",
)
NETWORK = ("aiohttp", "feedparser", "httpx")  # only the commands that fetch need them
CONFIG_ONLY = ("email_validator", "pydantic")  # reading feeds.toml needs them; --version and --help do not

_PROBE = """
import json, sys
out, argv = sys.argv[1], json.loads(sys.argv[2])
from digest.cli import main
try:
    main(argv)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(out, "w") as handle:
    json.dump({"code": code, "modules": sorted(sys.modules)}, handle)
"""

FEEDS_TOML = """
[digest]
title = "Start-up"

[[sources]]
feed = "https://blog.example.org/rss.xml"

[[sources]]
mastodon = "@someone@mastodon.example"

[[sources]]
hashtag = "FHIR"

[[sources]]
bluesky = "someone.bsky.social"

[[topics]]
name = "Interoperability"
keywords = ["FHIR", "HL7"]
"""


def _loaded(tmp_path: Path, *argv: str, stdout: Path | None = None) -> set[str]:
    """The top-level packages `sys.modules` held after `digest ARGV` ran in a fresh interpreter
    (what it printed written to ``stdout``, when given)."""
    report = tmp_path / "modules.json"
    env = {**os.environ, "DIGEST_NOW": NOW.isoformat()}
    env.pop("DIGEST_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), json.dumps(argv)],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    if stdout is not None:
        stdout.write_bytes(done.stdout)
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["code"] in (0, None), result["code"]
    return {name.split(".")[0] for name in result["modules"]}


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_load_neither_the_heavy_libraries_nor_the_config_reader(
    tmp_path: Path, argv: list[str]
) -> None:
    loaded = _loaded(tmp_path, *argv)
    assert "click" in loaded  # the probe did run the command
    assert sorted(loaded & {*HEAVY, *CONFIG_ONLY}) == []


def test_check_loads_the_config_reader_but_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    (tmp_path / "feeds.toml").write_text(FEEDS_TOML, encoding="utf-8")
    loaded = _loaded(tmp_path, "--config", str(tmp_path / "feeds.toml"), "check", "--json")
    assert "pydantic" in loaded  # the probe did read feeds.toml
    assert sorted(loaded & set(HEAVY)) == []


def test_check_beside_an_existing_store_reads_it_without_sqlalchemy(tmp_path: Path) -> None:
    from digest.models import Recipient
    from digest.store import Store

    (tmp_path / "feeds.toml").write_text(FEEDS_TOML, encoding="utf-8")
    with Store.open(f"sqlite:///{tmp_path / 'digest.db'}") as store:  # the config's default database
        store.add_subscriber(Recipient("ana@example.org", status="pending", origin="web"), NOW)
    report = tmp_path / "check.json"
    loaded = _loaded(tmp_path, "--config", str(tmp_path / "feeds.toml"), "check", "--json", stdout=report)
    assert json.loads(report.read_text(encoding="utf-8"))["subscribers"]["store"]["pending"] == 1  # it read the store
    assert sorted(loaded & set(HEAVY)) == []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """feeds.toml beside a store holding one on-topic post of the edition in progress."""
    from datetime import timedelta

    from digest.store import Store

    folder = tmp_path_factory.mktemp("site")
    (folder / "feeds.toml").write_text(FEEDS_TOML, encoding="utf-8")
    with Store.open(f"sqlite:///{folder / 'digest.db'}") as store:
        store.add_posts("feed:x", [make_post(text="FHIR R6 ballot opens", published=NOW - timedelta(hours=1))])
    return folder


@pytest.mark.parametrize(
    "argv",
    [
        ["filter"],
        ["preview", "--text"],
        ["send", "--dry-run"],
        ["topics", "show"],
        ["chats", "list"],
        ["subscribers", "list"],
    ],
)
def test_commands_that_fetch_nothing_never_load_the_network_stack(site: Path, argv: list[str]) -> None:
    """Ranking and composing share `digest.urls` with the collectors, not the collectors themselves."""
    loaded = _loaded(site, "--config", str(site / "feeds.toml"), *argv)
    assert "pydantic" in loaded  # the command read feeds.toml (and exited 0: `_loaded` checks)
    assert sorted(loaded & set(NETWORK)) == []
