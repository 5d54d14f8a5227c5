"""The serve schedule: the weekly job runs exactly once per week, across restarts and crashes; collection
runs once per slot. Jobs are recorded in a real SQLite store; one test sends through a real SMTP server."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import make_post, settings_from
from smtpserver import SmtpSink

from digest import clock
from digest.models import Recipient
from digest.schedule import LEASE, RETRY_AFTER, Scheduler, collect_slot, next_send, send_due, weekly_job
from digest.store import Store

# Friday 2026-11-20 07:00 Europe/Berlin is 06:00 UTC.
SEND_AT = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
CONFIG = """
[digest]
title = "Health IT weekly"
timezone = "Europe/Berlin"
send_on = "friday 07:00"
collect_every = "1h"

[[topics]]
name = "Interoperability"
keywords = ["FHIR", "HL7"]
"""


class Runs:
    """Fake jobs that count their runs (the real ones are tested with a real SMTP server below)."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[str, datetime]] = []
        self.fail = fail

    def weekly(self, settings, store, now):  # type: ignore[no-untyped-def]
        self.calls.append(("send", now))
        if self.fail:
            self.fail -= 1
            raise RuntimeError("smtp down")
        return True, "sent 1"

    def collect(self, settings, store, now):  # type: ignore[no-untyped-def]
        self.calls.append(("collect", now))
        return True, "3 new posts"

    def sends(self) -> int:
        return sum(1 for name, _ in self.calls if name == "send")


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = settings_from(tmp_path, CONFIG)
    store = Store.open(settings.database_url)
    yield settings, store
    store.close()


def scheduler(settings, store, runs: Runs, clock: list[datetime], owner: str = "host:1") -> Scheduler:  # type: ignore[no-untyped-def]
    return Scheduler(settings, store, clock=lambda: clock[0], collect=runs.collect, weekly=runs.weekly, owner=owner)


def test_send_due_and_next_send_follow_the_local_schedule(setup) -> None:  # type: ignore[no-untyped-def]
    settings, _ = setup
    assert send_due(settings, SEND_AT - timedelta(seconds=1)) is None
    assert send_due(settings, SEND_AT) == "2026-W47"
    assert send_due(settings, datetime(2026, 11, 22, 22, 59, tzinfo=UTC)) == "2026-W47"  # Sunday 23:59 Berlin
    assert send_due(settings, datetime(2026, 11, 22, 23, 0, tzinfo=UTC)) is None  # Monday 00:00 Berlin: a new week
    assert next_send(settings, SEND_AT - timedelta(hours=1)) == SEND_AT
    assert next_send(settings, SEND_AT + timedelta(hours=1)) == SEND_AT + timedelta(days=7)
    assert collect_slot(datetime(2026, 11, 20, 6, 59, tzinfo=UTC), timedelta(hours=1)) == "2026-11-20T06:00:00Z"
    assert collect_slot(datetime(2026, 11, 20, 6, 59, tzinfo=UTC), timedelta(minutes=30)) == "2026-11-20T06:30:00Z"


def test_the_weekly_job_runs_once_across_ticks_and_restarts(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store = setup
    runs, clock = Runs(), [SEND_AT - timedelta(minutes=5)]
    first = scheduler(settings, store, runs, clock)
    assert [name for name, _, _ in first.run_pending()] == ["collect"]  # before the send time
    clock[0] = SEND_AT + timedelta(seconds=10)
    assert [(n, p, o) for n, p, o in first.run_pending()] == [("send", "2026-W47", "done")]
    assert first.run_pending() == []  # the weekly job also did this hour's collection
    for minutes in (1, 30, 600, 3 * 24 * 60):  # restarts later that week: new processes
        clock[0] = SEND_AT + timedelta(minutes=minutes)
        again = scheduler(settings, store, runs, clock, owner=f"host:{minutes}")
        assert all(name != "send" for name, _, _ in again.run_pending())
    assert runs.sends() == 1
    clock[0] = SEND_AT + timedelta(days=7)
    assert [n for n, _, _ in first.run_pending()][:1] == ["send"] and runs.sends() == 2  # next week


def test_a_server_down_at_send_time_catches_up_later_that_week(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store = setup
    runs, clock = Runs(), [SEND_AT + timedelta(days=1, hours=3)]  # started on Saturday
    assert ("send", "2026-W47", "done") in scheduler(settings, store, runs, clock).run_pending()
    assert runs.sends() == 1


def test_a_crashed_run_is_taken_over_only_when_its_lease_lapses(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store = setup
    runs, clock = Runs(), [SEND_AT + timedelta(seconds=5)]
    assert store.claim_job("send", "2026-W47", "dead:99", clock[0], lease=LEASE, retry_after=RETRY_AFTER)
    clock[0] = SEND_AT + timedelta(minutes=2)  # the crashed process's lease is still fresh
    restarted = scheduler(settings, store, runs, clock, owner="host:2")
    assert all(name != "send" for name, _, _ in restarted.run_pending())
    clock[0] = SEND_AT + LEASE + timedelta(minutes=1)
    assert ("send", "2026-W47", "done") in restarted.run_pending()
    assert runs.sends() == 1
    assert store.job("send", "2026-W47").attempts == 2  # type: ignore[union-attr]


def test_a_live_run_keeps_its_lease_by_renewing_it(setup) -> None:  # type: ignore[no-untyped-def]
    _, store = setup
    assert store.claim_job("send", "2026-W47", "a:1", SEND_AT, lease=LEASE, retry_after=RETRY_AFTER)
    store.renew_job("send", "2026-W47", "a:1", SEND_AT + timedelta(minutes=9))
    later = SEND_AT + LEASE + timedelta(minutes=1)
    assert not store.claim_job("send", "2026-W47", "b:2", later, lease=LEASE, retry_after=RETRY_AFTER)
    store.renew_job("send", "2026-W47", "b:2", later)  # another owner cannot renew it
    assert store.job("send", "2026-W47").owner == "a:1"  # type: ignore[union-attr]


def test_a_failed_week_is_retried_after_a_pause_and_then_never_again(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    settings, store = setup
    runs, clock = Runs(fail=1), [SEND_AT]
    sched = scheduler(settings, store, runs, clock)
    with caplog.at_level(logging.INFO, logger="digest.schedule"):
        assert ("send", "2026-W47", "failed") in sched.run_pending()
    assert "RuntimeError: smtp down" in caplog.text
    clock[0] = SEND_AT + RETRY_AFTER - timedelta(minutes=1)
    assert all(name != "send" for name, _, _ in sched.run_pending())
    clock[0] = SEND_AT + RETRY_AFTER
    assert ("send", "2026-W47", "done") in sched.run_pending()
    clock[0] = SEND_AT + RETRY_AFTER * 3
    sched.run_pending()
    assert runs.sends() == 2


def test_collection_runs_once_per_slot(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store = setup
    runs, clock = Runs(), [SEND_AT - timedelta(days=2)]
    for minutes in range(0, 180, 20):
        clock[0] = SEND_AT - timedelta(days=2) + timedelta(minutes=minutes)
        scheduler(settings, store, runs, clock, owner=f"h:{minutes}").run_pending()
    assert [name for name, _ in runs.calls] == ["collect"] * 3


def test_unconfirmed_subscriptions_are_forgotten_after_seven_days(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store = setup
    store.add_subscriber(Recipient("old@example.org", status="pending", origin="web"), SEND_AT - timedelta(days=8))
    store.add_subscriber(Recipient("new@example.org", status="pending", origin="web"), SEND_AT - timedelta(days=1))
    store.add_subscriber(Recipient("kept@example.org", status="confirmed"), SEND_AT - timedelta(days=30))
    scheduler(settings, store, Runs(), [SEND_AT - timedelta(hours=1)]).run_pending()
    assert [r.email for r in store.subscribers()] == ["kept@example.org", "new@example.org"]


def test_run_forever_ticks_and_stops_when_cancelled(setup) -> None:  # type: ignore[no-untyped-def]
    settings, store = setup
    runs = Runs()
    sched = Scheduler(
        settings, store, clock=lambda: SEND_AT, collect=runs.collect, weekly=runs.weekly, tick=0.01, owner="h:1"
    )

    async def main() -> None:
        task = asyncio.create_task(sched.run_forever())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert runs.sends() == 1


def test_the_real_weekly_job_sends_once_through_smtp_across_a_restart(tmp_path: Path) -> None:
    sink = SmtpSink()
    now = clock.now()
    weekday = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")[now.weekday()]
    with sink.running() as port:
        body = (
            f'[digest]\ntitle = "Health IT weekly"\nsend_on = "{weekday} 00:00"\n\n'
            f'[mail]\nfrom = "digest <digest@hit.example>"\nsmtp = "smtp://127.0.0.1:{port}"\ntls = "none"\n\n'
            '[[topics]]\nname = "Interoperability"\nkeywords = ["FHIR", "HL7"]\n\n'
            '[[subscribers]]\nemail = "ana@example.org"\n'
        )
        settings = settings_from(tmp_path, body)  # no sources: collection touches no network
        sent_at = now.replace(hour=0, minute=0, second=0, microsecond=0)  # the edition ends at today's 00:00
        post = make_post("https://p.example/1", text="FHIR R6 ballot opens", published=sent_at - timedelta(minutes=5))
        with Store.open(settings.database_url) as store:
            store.add_posts("feed:x", [post])
            for owner in ("first:1", "second:2"):  # the server restarts just after the send time
                ran = Scheduler(settings, store, weekly=weekly_job, owner=owner).run_pending()
                assert [n for n, _, _ in ran if n == "send"] == (["send"] if owner == "first:1" else [])
            week = send_due(settings, clock.now())
            assert store.job("send", week).status == "done"  # type: ignore[arg-type,union-attr]
    assert sink.by_recipient() == {"ana@example.org": 1}


# -- two schedules on one database: real processes, the clock seam carrying them across the send time --

# Each racer runs the real schedule (`Scheduler.run_forever`, what `digest serve` runs beside its pages)
# with a short tick, until this week's send is done and the clock is past the send time, then stops.
SCHEDULE = """
import asyncio, logging, sys, time
from digest import clock, config
from digest.schedule import Scheduler, send_due
from digest.store import Store

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
settings = config.load({path!r})
after = clock.parse_now({after!r})

async def main():
    with Store.open(settings.database_url) as store:
        ticking = asyncio.create_task(Scheduler(settings, store, tick=0.2).run_forever())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            week = send_due(settings, clock.now())
            if clock.now() > after and week and getattr(store.job("send", week), "status", None) == "done":
                break
            await asyncio.sleep(0.1)
        ticking.cancel()
        await asyncio.gather(ticking, return_exceptions=True)

asyncio.run(main())
"""


def test_two_schedules_on_one_database_send_the_week_once_and_collect_once(
    store_url: str, tmp_path: Path, http_server
) -> None:  # type: ignore[no-untyped-def]
    from httpserver import Response
    from store.test_races import item, race

    people = [f"reader{i:02d}@example.org" for i in range(20)]
    feeds = []
    for f in range(3):
        body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {f}</title>'
        body += "".join(item(f * 10 + i) for i in range(5)) + "</channel></rss>"
        http_server.route(f"/feed/{f}", Response(body.encode(), headers={"Content-Type": "application/rss+xml"}))
        feeds.append(http_server.url(f"/feed/{f}"))
    send_at = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)  # Saturday of 2026-W47, helpers.NOW + 1 h
    sink = SmtpSink()
    with sink.running() as port:
        path = tmp_path / "feeds.toml"
        path.write_text(
            f'[digest]\ntitle = "Health IT weekly"\ndatabase = "{store_url}"\ntimezone = "UTC"\n'
            'send_on = "saturday 13:00"\ncollect_every = "1h"\n\n'
            f'[mail]\nfrom = "digest <digest@hit.example>"\nsmtp = "smtp://127.0.0.1:{port}"\ntls = "none"\n\n'
            '[[topics]]\nname = "Interoperability"\nkeywords = ["FHIR", "HL7"]\n\n'
            + "".join(f'[[sources]]\nfeed = "{u}"\n\n' for u in feeds)
            + "".join(f'[[subscribers]]\nemail = "{p}"\n\n' for p in people),
            encoding="utf-8",
        )
        Store.open(store_url).close()
        snippet = SCHEDULE.format(path=str(path), after=(send_at + timedelta(seconds=1)).isoformat())
        # Both start three seconds before the send time: the 12:00 collection slot is due, then the week.
        with pytest.MonkeyPatch.context() as env:
            env.setenv(clock.ENV, (send_at - timedelta(seconds=3)).isoformat())
            ran = race(tmp_path / "race", [["python", snippet]] * 2, timeout=180)
    for r in ran:
        assert r.returncode == 0 and "Traceback" not in r.stderr + r.stdout, r.stderr[-3000:] + r.stdout[-3000:]
    logs = [r.stdout for r in ran]
    weekly = [log.count("weekly job 2026-W47: starting") for log in logs]
    assert sorted(weekly) == [0, 1], logs  # one of the two ran the week
    assert sink.by_recipient() == dict.fromkeys(people, 1)  # everyone mailed exactly once
    assert [http_server.hits(f"/feed/{f}") for f in range(3)] == [1, 1, 1], logs  # collected once, not per schedule
    with Store.open(store_url) as store:
        week = store.job("send", "2026-W47")
        assert week is not None and week.status == "done" and week.attempts == 1
        for slot in ("2026-11-21T12:00:00Z", "2026-11-21T13:00:00Z"):
            job = store.job("collect", slot)
            assert job is not None and job.status == "done" and job.attempts == 1, (slot, job)
        assert {d.status for d in store.deliveries("2026-W47")} == {"sent"}
