"""Safe to run twice: real processes started at the same moment, on SQLite and on PostgreSQL.

Two `digest collect` runs overlap (cron beside `digest serve`, a slow hourly run, two machines on
one database) and share the sources: every feed is fetched once, by one of them, and each says
which sources the other held. Several processes open a new or an old database together. Each racer
imports digest, says it is ready, and waits for a start file, so they really start together; the
feed server then holds every request until both collectors have asked for something (it tells
them apart by their User-Agent), so both are fetching at the same moment.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import sqlalchemy as sa
from helpers import NOW, make_post
from httpserver import Recorded, Response, TestServer

from digest.store import SCHEMA_VERSION, Store
from store.test_store import VERSION_1, columns, execute

# Runs in each racer: import what the work needs (digest's modules take a while), then wait at
# `barrier("start")` for every racer to be ready, then run `python -m digest ARGS...` (mode "digest")
# or a snippet of Python (mode "python") that may call `barrier(name)` itself between rounds.
RUNNER = """
import importlib, os, runpy, sys, time
gate, racers, mode, *args = sys.argv[1:]

def barrier(name):
    open(os.path.join(gate, f"{name}.{os.getpid()}"), "w").close()
    deadline = time.monotonic() + 60
    while sum(1 for f in os.listdir(gate) if f.startswith(name + ".")) < int(racers):
        if time.monotonic() > deadline:
            sys.exit(f"the other racers never reached {name}")
        time.sleep(0.001)

importlib.import_module("digest.cli" if mode == "digest" else "digest.store")
barrier("start")
if mode == "digest":
    sys.argv = ["digest", *args]
    runpy.run_module("digest", run_name="__main__", alter_sys=True)
else:
    exec(args[0])
"""

FEEDS = 30  # enough feed jobs for collect's parsing worker processes (PROCESS_POOL_MIN_JOBS)
ITEMS = 10  # each feed's own items; it also repeats the first SHARED of the next feed's
SHARED = 3
ROUNDS = 20  # fresh databases opened at once per test, one after the other


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def race(folder: Path, argvs: Sequence[Sequence[str]], timeout: float = 120) -> list[Ran]:
    """Start one racer per argv, let them release each other, and wait for all (output kept in
    files, so a racer that prints a lot never blocks on a full pipe while holding a lock)."""
    gate = folder / "gate"
    gate.mkdir(parents=True)
    procs, outputs = [], []
    try:
        for i, argv in enumerate(argvs):
            out, err = (folder / f"{i}.out").open("w+"), (folder / f"{i}.err").open("w+")
            outputs.append((out, err))
            command = [sys.executable, "-c", RUNNER, str(gate), str(len(argvs)), *argv]
            procs.append(subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True))
        ran = []
        for proc, (out, err) in zip(procs, outputs, strict=True):
            proc.wait(timeout=timeout)
            out.seek(0)
            err.seek(0)
            ran.append(Ran(proc.returncode, out.read(), err.read()))
        return ran
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for out, err in outputs:
            out.close()
            err.close()


def item(n: int) -> str:
    published = format_datetime(NOW - timedelta(hours=1, minutes=n))
    return (
        f"<item><title>Post {n}</title><link>https://news.example/p/{n}</link><guid>https://news.example/p/{n}</guid>"
        f"<pubDate>{published}</pubDate><description>FHIR note {n}: "
        f"&lt;a href=&quot;https://ref.example/{n}&quot;&gt;the spec&lt;/a&gt;</description></item>"
    )


def feed(f: int) -> bytes:
    own = [f * ITEMS + i for i in range(ITEMS)]
    shared = [((f + 1) % FEEDS) * ITEMS + i for i in range(SHARED)]
    items = "".join(item(n) for n in own + shared)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {f}</title>{items}</channel></rss>'.encode()


def serve_in_step(server: TestServer, racers: int) -> list[str]:
    """Route FEEDS feeds, each answered only once ``racers`` different User-Agents asked for
    something (or after 20 s), so the collectors are fetching at the same moment."""
    agents: set[str] = set()
    changed = threading.Condition()

    def held(body: bytes) -> Callable[[Recorded], Response]:
        def answer(request: Recorded) -> Response:
            with changed:
                agents.add(request.headers.get("User-Agent", ""))
                changed.notify_all()
                changed.wait_for(lambda: len(agents) >= racers, timeout=20)
            return Response(body, headers={"Content-Type": "application/rss+xml"})

        return answer

    urls = []
    for f in range(FEEDS):
        server.route(f"/feed/{f}", Response(callable=held(feed(f))))
        urls.append(server.url(f"/feed/{f}"))
    return urls


def config(tmp_path: Path, database: str, urls: Sequence[str], name: str = "feeds.toml", collect: str = "") -> Path:
    path = tmp_path / name
    sources = "".join(f'[[sources]]\nfeed = "{url}"\n\n' for url in urls)
    path.write_text(
        f'[digest]\ndatabase = "{database}"\n\n'
        "[collect]\nper_host = 100\nconnect_timeout = 10\nread_timeout = 30\ntotal_timeout = 60\nretries = 0\n"
        f"{collect}\n{sources}",
        encoding="utf-8",
    )
    return path


def count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def fetched(summary: dict[str, object]) -> set[str]:
    """The sources a collect run fetched itself: every source it did not leave to another run."""
    held = {item["source"] for item in summary["held_elsewhere"]}  # type: ignore[attr-defined]
    return {f"feed:{u}" for u in summary["urls"]} - held  # type: ignore[attr-defined]


def test_two_collects_at_once_share_the_sources_and_store_every_post_once(
    store_url: str, tmp_path: Path, http_server: TestServer
) -> None:
    urls = serve_in_step(http_server, racers=2)
    # Each racer has room for 8 sources at a time, so neither can claim all 30 before the other starts.
    paths = [
        config(tmp_path, store_url, urls, f"racer-{i}.toml", f'concurrency = 8\nuser_agent = "racer-{i}"\n')
        for i in range(2)
    ]
    Store.open(store_url).close()  # opening a new database at once is the next test's
    ran = race(tmp_path / "race", [["digest", "--config", str(p), "collect", "--json"] for p in paths])

    for r in ran:
        assert r.returncode == 0, r.stderr[-3000:]
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
    summaries = [{**json.loads(r.stdout), "urls": urls} for r in ran]
    keys = {f"feed:{u}" for u in urls}
    mine = [fetched(s) for s in summaries]
    assert all(mine), [s["ok"] for s in summaries]  # both fetched some: they shared the run
    assert mine[0].isdisjoint(mine[1]) and mine[0] | mine[1] == keys
    assert [s["ok"] for s in summaries] == [len(m) for m in mine] and all(s["failed"] == 0 for s in summaries)
    for s, other in zip(summaries, reversed(mine), strict=True):  # each names what the other fetched
        assert {h["source"] for h in s["held_elsewhere"]} == other
        assert all(
            h["reason"].startswith(("being fetched by another run", "fetched by another run"))
            for h in s["held_elsewhere"]
        )
    assert all(http_server.hits(f"/feed/{f}") == 1 for f in range(FEEDS))  # every feed fetched exactly once
    distinct = FEEDS * ITEMS
    assert sum(s["new_posts"] for s in summaries) == distinct, [s["new_posts"] for s in summaries]
    assert count(store_url, "posts") == distinct
    assert count(store_url, "post_sources") == FEEDS * (ITEMS + SHARED)  # each feed, each of its posts, once
    with Store.open(store_url) as store:
        assert count(store_url, "post_links") == sum(len(p.links) for p in store.posts()) >= distinct
        states = store.source_states()
        assert sorted(states) == sorted(keys)
        assert all(s.status == "ok" and s.failures == 0 for s in states.values())
        first = store.post(make_post("https://news.example/p/0").id)
        assert first is not None and store.sources_of(first.id) == sorted([f"feed:{urls[0]}", f"feed:{urls[-1]}"])

    # A third collect right after: every source was fetched moments ago, so nothing is fetched again.
    again = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(paths[0]), "collect"], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert f"{FEEDS} sources held by other runs" in again.stdout
    assert all(http_server.hits(f"/feed/{f}") == 1 for f in range(FEEDS))


def test_a_collect_killed_mid_run_has_its_sources_taken_over_by_the_next(
    store_url: str, tmp_path: Path, http_server: TestServer
) -> None:
    urls = []
    for f in range(FEEDS):
        body = Response(feed(f), headers={"Content-Type": "application/rss+xml"})
        stuck = f == FEEDS - 1  # the first request for the last feed hangs until the test ends
        urls.append(http_server.url(f"/feed/{f}"))
        http_server.route(f"/feed/{f}", Response(sequence=[replace(body, delay=120), body]) if stuck else body)
    path = config(tmp_path, store_url, urls)
    Store.open(store_url).close()
    victim = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(path), "collect", "--quiet"])
    try:
        stuck_key = f"feed:{urls[-1]}"
        deadline = time.monotonic() + 120
        while not (http_server.hits(f"/feed/{FEEDS - 1}") and _stored_all_but(store_url, stuck_key, FEEDS - 1)):
            assert victim.poll() is None and time.monotonic() < deadline, "the victim never got stuck on the last feed"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()

    after = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(path), "collect", "--json"], capture_output=True, text=True
    )
    assert after.returncode == 0, after.stderr[-3000:]
    summary = json.loads(after.stdout)
    # Only the dead run's claim was fetched again; the other feeds already brought SHARED of its posts.
    assert summary["ok"] == 1 and summary["new_posts"] == ITEMS - SHARED
    assert next(n["note"] for n in summary["notes"] if n["source"] == stuck_key).startswith("taken over from ")
    assert sorted(h["source"] for h in summary["held_elsewhere"]) == sorted(f"feed:{u}" for u in urls[:-1])
    assert [http_server.hits(f"/feed/{f}") for f in range(FEEDS)] == [1] * (FEEDS - 1) + [2]
    assert count(store_url, "posts") == FEEDS * ITEMS
    with Store.open(store_url) as store:
        assert all(s.status == "ok" for s in store.source_states().values())


def _stored_all_but(url: str, stuck: str, expected: int) -> bool:
    """True when every source but ``stuck`` is stored and its claim ended."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            done = conn.execute(
                sa.text("SELECT count(*) FROM sources WHERE status = 'ok' AND owner = '' AND key != :stuck"),
                {"stuck": stuck},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(done) == expected


# Each racer opens the same fresh database at the same moment, round after round.
OPEN = """
from digest.store import Store
for i, url in enumerate({urls!r}):
    barrier(f"round-{{i}}")
    with Store.open(url) as store:
        print(store.version, store.count_posts())
"""


def open_at_once(folder: Path, urls: Sequence[str], racers: int = 3) -> list[Ran]:
    return race(folder, [["python", OPEN.format(urls=list(urls))]] * racers)


def assert_opened(ran: list[Ran], rounds: int, posts: int) -> None:
    for r in ran:
        assert r.returncode == 0 and r.stderr == "", r.stderr[-3000:]
        assert r.stdout.splitlines() == [f"{SCHEMA_VERSION} {posts}"] * rounds


def test_processes_opening_a_new_database_at_once_all_find_it_ready(
    new_store_url: Callable[[], str], tmp_path: Path
) -> None:
    urls = [new_store_url() for _ in range(ROUNDS)]
    assert_opened(open_at_once(tmp_path, urls), ROUNDS, posts=0)
    assert all(count(url, "schema_info") == 1 for url in urls)


def test_processes_opening_an_old_database_at_once_migrate_it_once(
    new_store_url: Callable[[], str], tmp_path: Path
) -> None:
    urls = [new_store_url() for _ in range(ROUNDS)]
    for url in urls:
        with Store.open(url) as store:
            store.add_posts("feed:x", [make_post()])
        execute(url, *VERSION_1)
    assert_opened(open_at_once(tmp_path, urls), ROUNDS, posts=1)
    assert all(count(url, "schema_info") == 1 and "in_reply_to" in columns(url, "posts") for url in urls)
