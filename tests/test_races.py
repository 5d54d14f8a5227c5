"""Safe to run twice: real processes started at the same moment, on SQLite and on PostgreSQL.

Two `digest collect` runs overlap (cron beside `digest serve`, or a slow hourly run), and several
processes open a new or an old database together. Each racer imports digest, says it is ready,
and waits for a start file, so they really start together; the feed server then holds every feed
until both collectors have asked for it, so they store the same posts at the same moment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import sqlalchemy as sa
from helpers import NOW, make_post
from httpserver import Recorded, Response, TestServer
from test_store import VERSION_1, columns, execute

from digest.store import SCHEMA_VERSION, Store

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
    """Route FEEDS feeds, each answered only once ``racers`` requests for it came in (or after 10 s),
    so the collectors get, parse and store the same posts at the same moment."""
    arrived: dict[str, int] = {}
    changed = threading.Condition()

    def held(body: bytes) -> Callable[[Recorded], Response]:
        def answer(request: Recorded) -> Response:
            with changed:
                arrived[request.path] = arrived.get(request.path, 0) + 1
                changed.notify_all()
                changed.wait_for(lambda: arrived[request.path] >= racers, timeout=10)
            return Response(body, headers={"Content-Type": "application/rss+xml"})

        return answer

    urls = []
    for f in range(FEEDS):
        server.route(f"/feed/{f}", Response(callable=held(feed(f))))
        urls.append(server.url(f"/feed/{f}"))
    return urls


def config(tmp_path: Path, database: str, urls: Sequence[str]) -> Path:
    path = tmp_path / "feeds.toml"
    sources = "".join(f'[[sources]]\nfeed = "{url}"\n\n' for url in urls)
    path.write_text(
        f'[digest]\ndatabase = "{database}"\n\n'
        "[collect]\nper_host = 100\nconnect_timeout = 10\nread_timeout = 30\ntotal_timeout = 60\nretries = 0\n\n"
        f"{sources}",
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


def test_two_collects_at_once_store_every_post_once(store_url: str, tmp_path: Path, http_server: TestServer) -> None:
    urls = serve_in_step(http_server, racers=2)
    path = config(tmp_path, store_url, urls)
    Store.open(store_url).close()  # opening a new database at once is the next test's
    collect = ["--config", str(path), "collect", "--json"]
    ran = race(tmp_path / "race", [["digest", *collect], ["digest", *collect]])

    for r in ran:
        assert r.returncode == 0, r.stderr[-3000:]
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
    summaries = [json.loads(r.stdout) for r in ran]
    distinct = FEEDS * ITEMS
    assert all(s["ok"] == FEEDS and s["failed"] == 0 for s in summaries), summaries
    assert sum(s["new_posts"] for s in summaries) == distinct, [s["new_posts"] for s in summaries]
    assert count(store_url, "posts") == distinct
    assert count(store_url, "post_sources") == FEEDS * (ITEMS + SHARED)  # each feed, each of its posts, once
    with Store.open(store_url) as store:
        assert count(store_url, "post_links") == sum(len(p.links) for p in store.posts()) >= distinct
        states = store.source_states()
        assert sorted(states) == sorted(f"feed:{u}" for u in urls)
        assert all(s.status == "ok" and s.failures == 0 for s in states.values())
        first = store.post(make_post("https://news.example/p/0").id)
        assert first is not None and store.sources_of(first.id) == sorted([f"feed:{urls[0]}", f"feed:{urls[-1]}"])
    assert all(http_server.hits(f"/feed/{f}") == 2 for f in range(FEEDS))


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
