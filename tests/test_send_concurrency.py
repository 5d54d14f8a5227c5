"""Several `digest send` processes on one database at once (SQLite and PostgreSQL): they share the week,
and nobody gets two copies.

Real processes against a real SMTP server (aiosmtpd on 127.0.0.1); the server holds each run's first
message until every run has reached it, so the runs really overlap instead of taking turns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from smtpserver import SmtpSink
from test_mail import seed_posts, smtp_section, write_config

from digest import config
from digest.store import Store

PEOPLE = [f"r{i:03d}@example.org" for i in range(300)]
WEEK = "2026-W47"  # the edition completed at NOW (helpers.SEND_AT_NOW)


def _command(path: Path) -> list[str]:
    return [sys.executable, "-m", "digest", "--config", str(path), "send", "--week", WEEK, "--json"]


def _prepare(tmp_path: Path, port: int, store_url: str) -> tuple[Path, dict[str, str]]:
    path = write_config(tmp_path, smtp_section(port), PEOPLE)
    path.write_text(path.read_text().replace("[digest]\n", f'[digest]\ndatabase = "{store_url}"\n', 1))
    seed_posts(config.load(path))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    assert subprocess.run([*_command(path), "--dry-run"], env=env, capture_output=True).returncode == 0
    return path, env


def test_two_sends_started_together_mail_everyone_exactly_once(tmp_path: Path, store_url: str) -> None:
    sink = SmtpSink(meet=2)
    with sink.running() as port:
        path, env = _prepare(tmp_path, port, store_url)
        runs = [subprocess.Popen(_command(path), env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        reports = [json.loads(run.communicate(timeout=180)[0]) for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert sink.by_recipient() == dict.fromkeys(PEOPLE, 1)  # 300 messages, not 600
    assert sum(r["sent"] for r in reports) == 300
    assert all(r["sent"] > 0 for r in reports)  # they shared the work
    assert all(r["uncertain"] == [] and r["failed"] == [] for r in reports)


def test_a_send_killed_while_another_runs_is_finished_by_the_other(tmp_path: Path, store_url: str) -> None:
    sink = SmtpSink(meet=2)
    with sink.running() as port:
        path, env = _prepare(tmp_path, port, store_url)
        victim = subprocess.Popen(_command(path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        survivor = subprocess.Popen(_command(path), env=env, stdout=subprocess.PIPE, text=True)
        fired = threading.Event()

        def kill_victim(count: int) -> None:
            if count >= 40 and not fired.is_set():
                fired.set()
                victim.send_signal(signal.SIGKILL)

        sink.on_accept = kill_victim
        report = json.loads(survivor.communicate(timeout=180)[0])
        victim.wait(timeout=60)
        sink.on_accept = None
        with Store.open(config.load(path).database_url) as store:
            rows = {d.email: d for d in store.deliveries(WEEK)}
    assert victim.returncode == -signal.SIGKILL and survivor.returncode == 0
    counts = sink.by_recipient()
    assert sorted(counts) == PEOPLE  # the survivor took over what the dead run held
    assert {d.status for d in rows.values()} == {"sent"}
    twice = {e for e, n in counts.items() if n > 1}
    assert len(twice) <= 1 and twice <= {e for e, d in rows.items() if d.uncertain}
    assert {u["email"] for u in report["uncertain"]} == {e for e, d in rows.items() if d.uncertain}
