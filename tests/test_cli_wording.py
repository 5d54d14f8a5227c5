"""The command line's wording: one error style (``error: ...``), bad usage exits 2, counts in the
singular when there is one, and a start line and a browser note that say what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import NOW, ONE_TOPIC, make_post, run_cli, settings_from

from digest.cli._serve import _serving_line
from digest.store import Store

CONFIG = ONE_TOPIC


def test_click_usage_errors_are_in_the_one_error_style(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(settings_from(tmp_path, CONFIG).path)
    assert run_cli("--config", config, "send", "--bogus") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "error: No such option '--bogus'." and "Error:" not in err
    assert err.startswith("Usage: digest send [OPTIONS]")


def test_one_subscriber_is_singular(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(settings_from(tmp_path, CONFIG).path)
    assert run_cli("--config", config, "subscribers", "add", "ana@example.org", "--confirmed") == 0
    assert run_cli("--config", config, "subscribers", "export", str(tmp_path / "people.csv")) == 0
    assert capsys.readouterr().err.strip() == f"wrote 1 subscriber to {tmp_path / 'people.csv'}"
    assert run_cli("--config", config, "send", "--dry-run") == 0
    assert "; 1 confirmed subscriber\n" in capsys.readouterr().out


def test_the_serve_line_says_where_readers_reach_it_once() -> None:
    assert _serving_line("http://127.0.0.1:8080/", "127.0.0.1", 8080, False) == (
        "serving the subscription pages on http://127.0.0.1:8080; collecting and sending on the schedule"
    )
    assert _serving_line("https://digest.example.org", "127.0.0.1", 8080, True) == (
        "serving the subscription pages on http://127.0.0.1:8080 (readers reach it at https://digest.example.org); "
        "no schedule (--no-schedule)"
    )


def test_preview_open_with_no_browser_says_so(tmp_path: Path) -> None:
    """A real process with no browser to find: no DISPLAY, no BROWSER, a PATH of Python alone."""
    settings = settings_from(tmp_path, CONFIG)
    with Store.open(settings.database_url) as store:
        store.add_posts("feed:x", [make_post(text="FHIR R6 ballot opens", published=NOW - timedelta(hours=1))])
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    env["PATH"] = str(Path(sys.executable).parent)  # DIGEST_NOW stays: the edition in progress has the post
    out = tmp_path / "p.html"
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(settings.path), "preview", "--open", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and out.exists(), done.stderr
    assert done.stderr.splitlines()[-1] == f"no web browser found to open it; open {out} yourself"


def _json(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 0) -> Any:
    assert run_cli(*argv) == status
    return json.loads(capsys.readouterr().out)


def test_json_on_check_preview_and_the_subscriber_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_from(tmp_path, ONE_TOPIC)
    config = ("--config", str(settings.path))
    checked = _json(capsys, *config, "check", "--json")
    assert checked["ok"] is True and checked["topics"] == ["Interoperability"]
    assert checked["subscribers"] == {"listed": 1, "store": None}  # no store yet, and none created
    assert checked["schedule"]["next_send"] == "2026-11-27T07:00:00+00:00"

    added = _json(capsys, *config, "subscribers", "add", "Ben@Example.org", "--confirmed", "--json")
    assert added == {
        "email": "ben@example.org",
        "state": "confirmed",
        "topics": ["Interoperability"],
        "confirmation_sent": False,
    }
    exported = _json(capsys, *config, "subscribers", "export", str(tmp_path / "people.csv"), "--json")
    assert exported == {"file": str(tmp_path / "people.csv"), "subscribers": 2}  # ben and ana, listed in the file
    for address, result in (("ben@example.org", "unsubscribed"), ("never@example.org", "not_subscribed")):
        assert _json(capsys, *config, "subscribers", "remove", address, "--json") == {
            "email": address,
            "result": result,
        }
    bad = _json(capsys, *config, "subscribers", "add", "nope", "--json", status=2)
    assert bad["exit_status"] == 2 and bad["error"].startswith("error: 'nope': ")

    with Store.open(settings.database_url) as store:
        store.add_posts("feed:x", [make_post(text="FHIR R6 ballot opens", published=NOW - timedelta(hours=1))])
    shown = _json(capsys, *config, "preview", "--json", "--out", str(tmp_path / "p.html"))
    assert shown["week"] == "2026-W48" and shown["complete"] is False and (tmp_path / "p.html").exists()
    assert shown["counts"]["read"] == 1 and shown["counts"]["summary"] == "1 post read from 1 source: 1 on topic."
    refused = _json(capsys, *config, "preview", "--json", "--week", "2026-W50", status=2)
    assert "has not begun" in refused["error"]


def test_json_on_sources_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_from(tmp_path, ONE_TOPIC + '\n[[sources]]\nfeed = "https://blog.example/feed.xml"\n')
    opml = tmp_path / "out.opml"
    exported = _json(capsys, "--config", str(settings.path), "sources", "export", str(opml), "--json")
    assert exported == {"file": str(opml), "feeds": 1, "left_out": []} and "blog.example" in opml.read_text()


def test_a_preview_with_nothing_to_show_fails_in_the_one_error_style(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(settings_from(tmp_path, ONE_TOPIC).path)
    assert run_cli("--config", config, "preview") == 1
    said = capsys.readouterr().err
    # the edition in progress may only have begun: it says so, and names the last edition to look at instead
    assert said.startswith("error: no posts match Interoperability in 2026-W48 yet (its period began ")
    assert said.rstrip().endswith("`digest preview --week 2026-W47` shows the last edition")
    assert run_cli("--config", config, "preview", "--week", "2026-W47") == 1
    said = capsys.readouterr().err
    assert said.startswith("error: no posts matched Interoperability in 2026-W47: an empty week sends nothing ")


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then let go): a connection there is refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_run_in_which_every_source_failed_exits_1_so_cron_notices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = CONFIG + f'\n[[sources]]\nfeed = "http://127.0.0.1:{_closed_port()}/feed.xml"\n'
    config = str(settings_from(tmp_path, body).path)
    assert run_cli("--config", config, "run", "--quiet") == 1  # `collect` exits 1 alike; `run` exited 0
    said = capsys.readouterr().err
    assert said.rstrip().endswith("error: every source that was tried failed (1 source)")
    assert run_cli("--config", config, "run", "--json") == 1
    assert json.loads(capsys.readouterr().out)["collect"]["errors"]


def test_a_run_with_no_subscribers_says_how_to_see_the_edition_or_add_a_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(settings_from(tmp_path, CONFIG.split("[[subscribers]]")[0]).path)
    assert run_cli("--config", config, "run") == 0
    said = capsys.readouterr().out
    assert "0 confirmed subscribers" in said
    assert "no confirmed subscribers, so no edition was sent: `digest preview` shows this week's" in said
    assert "`digest subscribers add --confirmed EMAIL` adds a reader" in said


def test_digest_alone_prints_its_help_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["sources"]):
        assert run_cli(*argv) == 0
        shown = capsys.readouterr()
        assert shown.out.startswith(f"Usage: digest {' '.join(argv)}".rstrip() + " [OPTIONS] COMMAND [ARGS]...")
        assert "Commands:" in shown.out and "error" not in shown.err.lower() and shown.out.count("Usage:") == 1


def test_counts_of_one_are_singular_in_collects_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = CONFIG + f'\n[[sources]]\nfeed = "http://127.0.0.1:{_closed_port()}/feed.xml"\n'
    config = str(settings_from(tmp_path, body).path)
    assert run_cli("--config", config, "collect") == 1
    assert "0 new posts from 1 source." in capsys.readouterr().out
    assert run_cli("--config", config, "check") == 0
    assert "1 endpoint to fetch" in capsys.readouterr().out


def test_a_global_option_after_the_command_says_where_it_goes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("sources", "list", "--config", "other.toml") == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert (
        last == "error: No such option '--config'. (--config goes before the command: digest --config ... sources list)"
    )
    assert run_cli("check", "--bogus") == 2
    assert "goes before the command" not in capsys.readouterr().err  # only the root's own options
