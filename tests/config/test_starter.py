"""What an operator copies: `digest init` (the starter feeds.toml a wheel carries, the systemd units
with this machine's paths), the global ``-v/--verbose`` and click's shell completion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from helpers import NOW, TEST_COLLECT, run_cli
from httpserver import Response, TestServer

from digest.starter import on_calendar, starter_text

ROOT = Path(__file__).resolve().parents[2]


def digest(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """digest in a fresh process (logging set up by -v must not leak into the other tests)."""
    return subprocess.run(
        [sys.executable, "-m", "digest", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "DIGEST_NOW": NOW.isoformat(), **(env or {})},
    )


def test_the_starter_is_the_repositorys_feeds_toml() -> None:
    assert starter_text() == (ROOT / "feeds.toml").read_text(encoding="utf-8")


def test_init_writes_a_starter_that_checks_and_keeps_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site" / "feeds.toml"
    assert run_cli("--config", str(path), "check") == 2
    assert f"{path}: not found; `digest init` writes a starter one there" in capsys.readouterr().err
    assert run_cli("--config", str(path), "init") == 0
    assert capsys.readouterr().out.startswith(f"wrote {path}: a starter to edit (sources, topics, [mail],")
    assert path.read_text(encoding="utf-8") == starter_text()
    assert run_cli("--config", str(path), "check") == 0
    capsys.readouterr()
    path.write_text("# mine\n", encoding="utf-8")
    assert run_cli("--config", str(path), "init") == 2
    assert f"error: {path}: already exists; edit it, or pass --force" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "# mine\n"
    assert run_cli("--config", str(path), "init", "--force") == 0
    assert path.read_text(encoding="utf-8") == starter_text()


def test_init_systemd_prints_units_with_this_machines_paths(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text('[digest]\nsend_on = "saturday 06:30"\ntimezone = "Europe/Berlin"\n', encoding="utf-8")
    done = digest("--config", str(config), "init", "--systemd", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    units = _units(done.stdout)
    assert sorted(units) == [
        "digest-collect.service",
        "digest-collect.timer",
        "digest-weekly.service",
        "digest-weekly.timer",
    ]
    program = Path(sys.executable).with_name("digest")
    run = f"{program if program.exists() else f'{sys.executable} -m digest'} --config {config}"
    assert f"ExecStart={run} collect --quiet\n" in units["digest-collect.service"]
    assert f"ExecStart={run} run --quiet\n" in units["digest-weekly.service"]
    assert f"WorkingDirectory={tmp_path}\n" in units["digest-weekly.service"]
    assert "OnCalendar=hourly\n" in units["digest-collect.timer"]
    assert "OnCalendar=Sat *-*-* 06:30:00 Europe/Berlin\nPersistent=true\n" in units["digest-weekly.timer"]
    assert "systemctl enable --now digest-collect.timer digest-weekly.timer" in done.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(starter_text(), encoding="utf-8")
    done = digest("--config", str(config), "init", "--systemd", cwd=tmp_path)
    folder = tmp_path / "units"
    folder.mkdir()
    for name, body in _units(done.stdout).items():
        (folder / name).write_text(body, encoding="utf-8")
    verified = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in folder.iterdir())], capture_output=True, text=True
    )
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    calendar = subprocess.run(
        ["systemd-analyze", "calendar", on_calendar("friday 07:00", "America/New_York")], capture_output=True, text=True
    )
    assert "Normalized form: Fri *-*-* 07:00:00 America/New_York" in calendar.stdout, calendar.stderr


def _units(printed: str) -> dict[str, str]:
    """The units ``init --systemd`` printed, by file name."""
    units: dict[str, str] = {}
    name = ""
    for line in printed.splitlines(keepends=True):
        if line.startswith("# /etc/systemd/system/"):
            name = line.strip().rsplit("/", 1)[1]
            units[name] = ""
        elif line.startswith("# then"):
            name = ""
        elif name:
            units[name] += line
    return {n: body.strip() + "\n" for n, body in units.items()}


def test_verbose_logs_each_source_on_stderr(tmp_path: Path, http_server: TestServer) -> None:
    when = format_datetime(NOW - timedelta(hours=2))
    http_server.route(
        "/feed.xml",
        Response(
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://x.example/</link>'
            + f"<item><guid>https://x.example/1</guid><title>FHIR</title><pubDate>{when}</pubDate></item>".encode()
            + b"</channel></rss>"
        ),
    )
    config = tmp_path / "feeds.toml"
    config.write_text(f'{TEST_COLLECT}\n[[sources]]\nfeed = "{http_server.url("/feed.xml")}"\n', encoding="utf-8")
    key = f"feed:{http_server.url('/feed.xml')}"
    quiet = digest("--config", str(config), "collect", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = digest("-v", "--config", str(config), "collect", "--quiet", cwd=tmp_path)
    assert loud.returncode == 0
    assert f"INFO digest.collect: {key}: not modified, 0 posts read, 0 new" in loud.stderr  # read by the first run
    assert "HTTP Request" not in loud.stderr  # the HTTP client's line per request is -vv's
    louder = digest("-vv", "--config", str(config), "collect", "--quiet", cwd=tmp_path)
    assert "HTTP Request: GET" in louder.stderr


def test_shell_completion_works_and_is_documented(tmp_path: Path) -> None:
    done = digest(cwd=tmp_path, env={"_DIGEST_COMPLETE": "bash_source"})
    assert done.returncode == 0 and "complete -o nosort -F _digest_completion digest" in done.stdout
    words = digest(
        cwd=tmp_path, env={"_DIGEST_COMPLETE": "bash_complete", "COMP_WORDS": "digest ini", "COMP_CWORD": "1"}
    )
    assert "plain,init" in words.stdout.split()
    helped = digest("init", "--help", cwd=tmp_path)
    assert 'eval "$(_DIGEST_COMPLETE=bash_source digest)"' in helped.stdout
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "_DIGEST_COMPLETE=zsh_source digest" in readme and "digest init --systemd" in readme
