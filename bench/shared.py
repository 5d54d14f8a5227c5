"""Benchmark: collection and sending shared by 1 and by 2 worker processes on one PostgreSQL database.

Entries (not in ``--quick``: each starts a PostgreSQL cluster and runs for tens of seconds):

- ``collect_workers``: `FEEDS` generated feeds (`bench.server.FeedServer`, 50 ms added to every
  response) collected into a fresh database by one ``collect()`` process, then into another fresh
  database by two started at the same moment, which share the sources by claiming them
  (``digest.collect``). Value: how many times faster the two finish than the one (wall of one
  over wall of two, the two from the first start to the last end). ``server_requests`` proves
  nothing was fetched twice: each run asks for every feed once.
- ``send_workers``: `SUBSCRIBERS` confirmed subscribers sent the week by one ``send_week``
  process, then (a fresh database) by two started together, which share the deliveries
  (``digest.delivery``), to the aiosmtpd sink of `bench.smtpsink` in its own process. Each process
  runs the whole of ``send_week`` (the topic filter and composing too: the second finds the
  editions stored but still filters); ``sink_messages`` proves nobody was mailed twice.

The database is a throwaway cluster started like the tests' (``tests/pg.py``: initdb in a temporary
folder, 127.0.0.1, fsync off); without PostgreSQL binaries or psycopg the entries say they were
skipped, and why. On a machine with few cores the work is CPU-bound (parsing, rendering, the SMTP
sink and PostgreSQL share the cores), which bounds the ratio; ``cores`` and ``other_cpu_s`` say so.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from . import compose as compose_bench
from . import corpus
from .common import Entry, busy_cpu_s, cpu_count, rounded
from .send import POSTS, SECRET_ENV, settings_text
from .server import FeedServer
from .smtpsink import SmtpSink

__all__ = ["run"]

FEEDS = 1000
HOSTS = 100  # ten feeds a port, so that [collect] per_host never caps concurrency
LATENCY = 0.05
SUBSCRIBERS = 3000
WORKERS = (1, 2)
TIMEOUT = 900.0
PG_HELPER = Path(__file__).resolve().parent.parent / "tests" / "pg.py"


def run(quick: bool) -> dict[str, Entry]:
    """Both entries, or nothing in quick mode; skipped (with the reason) without PostgreSQL."""
    if quick:
        return {}
    pg = _pg_module()
    reason = pg.unavailable() if pg is not None else f"{PG_HELPER} is not there"
    if pg is None or reason:
        note = f"skipped: needs a local PostgreSQL ({reason})"
        return {name: {"value": None, "unit": "x", "skipped": note, "notes": [note]} for name in _NAMES}
    cluster = pg.Cluster.start()
    try:
        return {"collect_workers": _collect_entry(cluster), "send_workers": _send_entry(cluster)}
    finally:
        cluster.stop()


_NAMES = ("collect_workers", "send_workers")


def _pg_module() -> ModuleType | None:
    """tests/pg.py, the tests' throwaway cluster (loaded by path: tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("digest_bench_pg", PG_HELPER)
    if spec is None or spec.loader is None or not PG_HELPER.exists():
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- running N workers at once -----------------------------------------------------------------


def _together(target: Callable[..., Any], args: tuple[Any, ...], workers: int) -> dict[str, Any]:
    """Start ``workers`` spawned processes running ``target(*args)``, released at one moment once all
    are ready; return their results, the wall from the first start to the last end, and the
    machine's busy CPU over that time."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Barrier(workers + 1), ctx.Event(), ctx.Queue()
    processes = [ctx.Process(target=_worker, args=(target, args, ready, go, results)) for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        ready.wait(TIMEOUT)
        busy = busy_cpu_s()
        go.set()
        got = [results.get(timeout=TIMEOUT) for _ in processes]
        busy_after = busy_cpu_s()
    finally:
        for process in processes:
            process.join(60)
            if process.is_alive():
                process.terminate()
    errors = [g["error"] for g in got if "error" in g]
    if errors:
        raise RuntimeError(f"a benchmark worker failed:\n{errors[0]}")
    wall = max(g["end"] for g in got) - min(g["start"] for g in got)
    machine = None if busy is None or busy_after is None else busy_after - busy
    workers_cpu = sum(g["cpu_s"] for g in got)
    return {"wall_s": wall, "workers": got, "machine_cpu_s": machine, "workers_cpu_s": workers_cpu}


def _worker(target: Callable[..., Any], args: tuple[Any, ...], ready: Any, go: Any, out: Any) -> None:
    try:
        with target(*args) as work:  # setup (imports, opening the store) before the start
            ready.wait(TIMEOUT)
            go.wait(TIMEOUT)
            start, cpu = time.monotonic(), time.process_time()  # CLOCK_MONOTONIC: one clock for every process
            result = work()
            result.update(start=start, end=time.monotonic(), cpu_s=time.process_time() - cpu)
    except BaseException:
        result = {"error": traceback.format_exc()}
    out.put(result)


# -- collect ----------------------------------------------------------------------------------


@contextmanager
def _collector(config_path: str) -> Iterator[Callable[[], dict[str, Any]]]:
    from digest import config
    from digest.collect import collect
    from digest.store import Store

    settings = config.load(Path(config_path))
    with Store.open(settings.database_url) as store:

        def work() -> dict[str, Any]:
            report = collect(settings, store)
            return {
                "ok": report.count("ok"),
                "failed": report.count("failed"),
                "held_elsewhere": report.count("held_elsewhere"),
                "new_posts": report.new_posts,
            }

        yield work


def _collect_entry(cluster: Any) -> Entry:
    import tempfile

    runs: dict[int, dict[str, Any]] = {}
    with FeedServer(FEEDS, hosts=HOSTS, latency=LATENCY, now=datetime.now(UTC)) as server:
        sources = "".join(f'[[sources]]\nfeed = "{url}"\n\n' for url in server.urls)
        with tempfile.TemporaryDirectory(prefix="digest-bench-shared-") as tmp:
            for n in WORKERS:
                url = cluster.new_database()
                path = Path(tmp) / f"collect-{n}.toml"
                path.write_text(f'[digest]\ndatabase = "{url}"\n\n{sources}', encoding="utf-8")
                _open_once(url)
                server.stats(reset=True)
                runs[n] = _together(_collector, (str(path),), n)
                runs[n]["server"] = server.stats()
                cluster.drop_database(url)
    two = runs[2]
    for n, r in runs.items():
        fetched = sum(w["ok"] + w["failed"] for w in r["workers"])
        if fetched != FEEDS or r["server"]["requests"] != FEEDS:
            raise RuntimeError(
                f"collect with {n} workers fetched {fetched} sources in {r['server']['requests']} requests"
            )
    return {
        **_ratio(runs, f"{FEEDS:,} feeds"),
        "feeds": FEEDS,
        "fetched_per_worker": [w["ok"] + w["failed"] for w in two["workers"]],
        "held_elsewhere_per_worker": [w["held_elsewhere"] for w in two["workers"]],
        "new_posts": sum(w["new_posts"] for w in two["workers"]),
        "server_requests": {n: r["server"]["requests"] for n, r in runs.items()},
        "cores": cpu_count(),
        **_cpu(runs),
        "notes": _notes(runs, f"every feed answers after {LATENCY * 1000:.0f} ms; default [collect] settings"),
    }


# -- send -------------------------------------------------------------------------------------


@contextmanager
def _sender(config_path: str, now_ts: float) -> Iterator[Callable[[], dict[str, Any]]]:
    from digest import config
    from digest.pipeline import send_week
    from digest.store import Store

    os.environ[SECRET_ENV] = "bench-only-signing-key"
    settings = config.load(Path(config_path))
    now = datetime.fromtimestamp(now_ts, UTC)
    with Store.open(settings.database_url) as store:

        def work() -> dict[str, Any]:
            report = send_week(settings, store, now=now)
            return {
                "sent": len(report.sent),
                "failed": len(report.failed) + len(report.deferred),
                "uncertain": len(report.uncertain),
            }

        yield work


def _send_entry(cluster: Any) -> Entry:
    import tempfile

    from digest.store import Store

    runs: dict[int, dict[str, Any]] = {}
    now = datetime.now(UTC)
    os.environ[SECRET_ENV] = "bench-only-signing-key"
    with SmtpSink() as sink, tempfile.TemporaryDirectory(prefix="digest-bench-shared-") as tmp:
        for n in WORKERS:
            url = cluster.new_database()
            path = Path(tmp) / f"send-{n}.toml"
            path.write_text(settings_text(smtp=sink.url).replace('"digest.db"', f'"{url}"'), encoding="utf-8")
            with Store.open(url) as store:  # untimed setup: the week's posts and the subscribers
                posts, _ = corpus.posts(POSTS, now=now, seed=11)
                corpus.store_posts(store, posts)
                corpus.store_subscribers(store, compose_bench.people(SUBSCRIBERS), now)
            sink.stats(reset=True)
            runs[n] = _together(_sender, (str(path), now.timestamp()), n)
            runs[n]["sink"] = sink.stats(reset=True)
            cluster.drop_database(url)
    for n, r in runs.items():
        sent = sum(w["sent"] for w in r["workers"])
        if sent != SUBSCRIBERS or r["sink"]["messages"] != SUBSCRIBERS:
            raise RuntimeError(f"send with {n} workers: {sent} sent, {r['sink']['messages']} at the sink")
    one, two = runs[1], runs[2]
    return {
        **_ratio(runs, f"{SUBSCRIBERS:,} messages"),
        "messages": SUBSCRIBERS,
        "one_worker_rate": rounded(SUBSCRIBERS / one["wall_s"], 1),
        "two_workers_rate": rounded(SUBSCRIBERS / two["wall_s"], 1),
        "sent_per_worker": [w["sent"] for w in two["workers"]],
        "sink_messages": {n: r["sink"]["messages"] for n, r in runs.items()},
        "sink_cpu_s": {n: r["sink"].get("cpu_s") for n, r in runs.items()},
        "cores": cpu_count(),
        **_cpu(runs),
        "notes": _notes(runs, "each worker runs the whole send_week (filter and compose included) against one sink"),
    }


# -- shared ---------------------------------------------------------------------------------------


def _open_once(url: str) -> None:
    """Create the schema before the timed runs (creating it at once is tested, not benchmarked)."""
    from digest.store import Store

    Store.open(url).close()


def _ratio(runs: dict[int, dict[str, Any]], size: str) -> Entry:
    """The value (wall of one worker over wall of two) and both walls."""
    one, two = runs[1]["wall_s"], runs[2]["wall_s"]
    return {
        "value": rounded(one / two, 2),
        "unit": "x",
        "size": size,
        "one_worker_s": rounded(one),
        "two_workers_s": rounded(two),
    }


def _cpu(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {
        "workers_cpu_s": {n: rounded(r["workers_cpu_s"], 2) for n, r in runs.items()},
        "machine_cpu_s": {
            n: None if r["machine_cpu_s"] is None else rounded(r["machine_cpu_s"], 2) for n, r in runs.items()
        },
    }


def _notes(runs: dict[int, dict[str, Any]], setup: str) -> list[str]:
    del runs
    return [
        f"{setup}; PostgreSQL is a throwaway local cluster (fsync off); value = wall of 1 worker / wall of 2",
        f"{cpu_count()} cores, shared by the workers, their parse processes, the server or sink and PostgreSQL: "
        "machine_cpu_s near wall x cores means the run was CPU-bound, which caps the ratio",
    ]
