"""Every environment failure is one line and an exit status: a full disk, a corrupt database, a
read-only file or folder, for every kind of command; ``--json`` commands still print JSON; the
state is left consistent (a run after the fix does the work once).

A full disk is SQLite's own `PRAGMA max_page_count` (set on every connection the command opens, to
the size the file has): SQLite then fails exactly as on a full disk (``database or disk is full``),
with no root and no special filesystem. Read-only is real: a chmod for a normal user, and for root
(whom permissions do not stop) a read-only bind mount in a user namespace (skipped when the machine
allows neither).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import NOW, make_post, run_cli
from hostile import good_feed
from httpserver import Response, TestServer

from digest.store import Store

CONFIG = """
[digest]
title = "Health IT weekly"

[[topics]]
name = "Interoperability"
description = "Exchanging health data between systems: HL7, FHIR, APIs."
keywords = ["FHIR", "HL7", "interoperability"]

[[subscribers]]
email = "ana@example.org"

[[subscribers]]
email = "bo@example.org"

[[sources]]
feed = "{feed}"
"""


@pytest.fixture
def site(tmp_path: Path, http_server: TestServer) -> Path:
    """A feeds.toml with a topic, two subscribers and a feed, and a store of a week's posts."""
    http_server.route("/feed.xml", Response(good_feed(7, items=5), headers={"Content-Type": "application/rss+xml"}))
    config = tmp_path / "feeds.toml"
    config.write_text(CONFIG.format(feed=http_server.url("/feed.xml")), encoding="utf-8")
    with Store.open(f"sqlite:///{tmp_path / 'digest.db'}") as store:
        texts = ["FHIR R6 ballot opens for comment", "HL7 interoperability connectathon results", "Lunch photos"]
        posts = [
            make_post(
                f"https://blog.example/{i}", text=f"{texts[i % 3]} {i}", published=NOW - timedelta(minutes=30 * i)
            )
            for i in range(80)  # both sides of the last send time (Friday 07:00): for filter and for send
        ]
        store.add_posts("feed:https://blog.example/feed", posts)
    return config


@contextmanager
def disk_full() -> Iterator[None]:
    """Every SQLite connection opened meanwhile may not grow its file: as a full disk."""

    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA max_page_count = 1")  # SQLite keeps it at the current size

    sa.event.listen(sa.engine.Engine, "connect", cap)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "connect", cap)


COMMANDS = [("collect",), ("filter",), ("send",), ("run",)]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_disk_full_is_one_line_and_the_work_is_done_once_after(
    site: Path, command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with disk_full():
        assert run_cli("--config", str(site), *command) == 1
    failed = capsys.readouterr()
    lines = failed.err.strip().splitlines()
    assert len(lines) == 1 and "database or disk is full: the disk" in lines[0], failed.err
    assert "Traceback" not in failed.err + failed.out
    with disk_full():
        assert run_cli("--config", str(site), *command, "--json") == 1
    answered = json.loads(capsys.readouterr().out)
    assert "database or disk is full" in answered["error"] and answered["exit_status"] == 1
    assert run_cli("--config", str(site), *command) == 0  # space freed: the same command does the work
    if command[0] in ("send", "run"):
        outbox = sorted(p.name for p in (site.parent / "outbox").rglob("*.eml"))
        assert len(outbox) == 2, outbox  # each subscriber once, nothing left half-sent
        assert run_cli("--config", str(site), *command) == 0
        assert len(list((site.parent / "outbox").rglob("*.eml"))) == 2


@pytest.mark.parametrize("command", [*COMMANDS, ("sources", "status"), ("topics", "show"), ("subscribers", "list")])
def test_corrupt_database_is_one_line(site: Path, command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    database = site.parent / "digest.db"
    for extra in ("-wal", "-shm"):
        Path(f"{database}{extra}").unlink(missing_ok=True)
    database.write_bytes(b"\x00garbage, not SQLite\xff" * 4096)
    assert run_cli("--config", str(site), *command) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert "file is not a database" in captured.err and "restore it from a backup" in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1


def _read_only(folder: Path) -> list[str] | None:
    """A command prefix that runs a command with ``folder`` read-only, or None when it cannot here."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        return None
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "-rm", "sh", "-c", script, str(folder)]


def _run_read_only(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    prefix = _read_only(folder)
    if prefix is None:
        pytest.skip("cannot make a folder read-only here: running as root without user namespaces")
    if not prefix:
        for path in (folder, *folder.iterdir()):
            path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "digest", *argv], capture_output=True, text=True, timeout=120
        )
    finally:
        if not prefix:
            for path in (folder, *folder.iterdir()):
                path.chmod(0o755 if path.is_dir() else 0o644)


def test_sources_status_works_in_a_read_only_folder(site: Path) -> None:
    assert run_cli("--config", str(site), "collect", "--quiet") == 0
    shown = _run_read_only(site.parent, "--config", str(site), "sources", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    (row,) = json.loads(shown.stdout)
    assert row["status"] == "ok" and row["posts_week"] == 5
    checked = _run_read_only(site.parent, "--config", str(site), "check")
    assert checked.returncode == 0 and "in the store: 0 confirmed" in checked.stdout, checked.stdout + checked.stderr


@pytest.mark.parametrize("command", [("collect", "--json"), ("filter",), ("send",)])
def test_writing_in_a_read_only_folder_is_one_line(site: Path, command: tuple[str, ...]) -> None:
    done = _run_read_only(site.parent, "--config", str(site), *command)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and ("read-only" in lines[0] or "cannot be opened" in lines[0]), done.stderr
    if "--json" in command:
        assert json.loads(done.stdout)["exit_status"] == 1


def test_a_database_corrupted_while_a_collect_runs_is_one_line(site: Path, http_server: TestServer) -> None:
    """The file is overwritten while the run waits for its feed: the run's next write meets garbage."""
    http_server.route(
        "/feed.xml", Response(good_feed(8, items=5), headers={"Content-Type": "application/rss+xml"}, delay=2.0)
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(site), "collect", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(1200):  # until the server has the request (the run then waits 2 s for its answer)
        if http_server.requests("/feed.xml") or run.poll() is not None:
            break
        threading.Event().wait(0.05)
    assert http_server.requests("/feed.xml"), run.poll()
    (site.parent / "digest.db").write_bytes(b"\x00garbage, not SQLite\xff" * 4096)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, (out, err)
    assert "Traceback" not in out + err
    answered = json.loads(out)
    assert answered["exit_status"] == 1
    assert "not a database" in answered["error"] or "corrupt" in answered["error"], answered
    assert len(err.strip().splitlines()) <= 1, err


def test_a_database_locked_too_long_is_one_line(site: Path) -> None:
    """Another process holds the write lock past the busy timeout and every retry (about 40 s)."""
    holder = sqlite3.connect(site.parent / "digest.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "digest", "--config", str(site), "filter", "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    assert "database is locked" in json.loads(done.stdout)["error"]
    assert run_cli("--config", str(site), "filter") == 0  # the lock gone, the same command does the work
