"""Benchmark: `digest.collect.collect` over many Mastodon-style RSS feeds, then again when all answer 304.

Entries:

- ``collect`` (1,000 feeds; 100 with ``--quick``) and ``collect_500`` (500 feeds; not in quick
  mode): wall time of one ``collect()`` on a fresh SQLite store, every source a
  ``[[sources]] feed = ...`` with default ``[collect]`` settings, against a local server adding
  50 ms to every response. ``baseline`` is the serial approach of feed-to-email tools such as
  rss2email (one ``httpx.Client`` request at a time, then ``feedparser.parse`` with its default
  settings), measured on a subset and extrapolated linearly. ``floor`` is
  ``max(total latency / concurrency, feedparser CPU time for all documents / cores)``, the
  feedparser time measured here with digest's settings (``sanitize_html=False,
  resolve_relative_uris=False``) in one process.
- ``collect_304``: a second ``collect()`` over the 1,000-feed store, where every feed answers
  ``304 Not Modified`` to the ETag digest sends back. Its baseline is the first (200) run.

``collect()`` runs in a freshly spawned process, as ``digest collect`` does from cron, so its
peak memory is its own; digest's parse workers are that process's children.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import resource
import tempfile
import time
import traceback
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import feedparser
import httpx

from .common import Entry, busy_cpu_s, cpu_count, noise_note, peak_mb, profiled, rounded
from .server import FeedServer

__all__ = ["run"]

LATENCY = 0.05  # seconds added to every response
ITEMS = 20  # items per feed
FEEDS_PER_HOST = 10  # feeds served by one port (one simulated Mastodon server)
MIN_HOSTS = 25  # enough hosts that per_host x hosts is well above concurrency
CHILD_TIMEOUT = 900.0
CONTENT_TYPE = "application/rss+xml; charset=utf-8"
TARGET_RATIO = 10.0  # issue 16: at least this many times the serial baseline
TARGET_FLOOR_RATIO = 1.25  # issue 16: within this factor of the floor (both the first round and the all-304 one)


def run(quick: bool) -> dict[str, Entry]:
    """Run the collect benchmarks; ``quick`` is 100 feeds (serial baseline on 20) instead of 500 and 1,000."""
    from digest.config import CollectSettings

    sizes = (100,) if quick else (500, 1000)
    serial_n = 20 if quick else 100
    feeds = max(sizes)
    hosts = max(MIN_HOSTS, -(-feeds // FEEDS_PER_HOST))
    defaults = CollectSettings()
    cores = cpu_count()
    now = datetime.now(UTC)
    with FeedServer(feeds, hosts=hosts, latency=LATENCY, now=now) as server:
        docs = server.docs()
        parse = _parse_costs(docs, server.urls)
        baseline = _serial_baseline(server.urls[:serial_n])
        with tempfile.TemporaryDirectory(prefix="digest-bench-") as tmp:
            entries: dict[str, Entry] = {}
            runs: dict[int, dict[str, Any]] = {}
            for size in sizes:
                folder = Path(tmp) / f"collect-{size}"
                server.stats(reset=True)
                result = _collect_in_child(folder, server.urls[:size], f"collect-{size}")
                result["server"] = server.stats()
                runs[size] = result
                name = "collect" if size == feeds else f"collect_{size}"
                entries[name] = _collect_entry(size, result, parse, baseline, defaults, hosts, cores)
            server.stats(reset=True)
            again = _collect_in_child(Path(tmp) / f"collect-{feeds}", server.urls[:feeds], "collect_304")
            again["server"] = server.stats()
            entries["collect_304"] = _not_modified_entry(feeds, again, runs[feeds], defaults)
    order = ["collect", *(f"collect_{s}" for s in sizes if s != feeds), "collect_304"]
    return {name: entries[name] for name in order}


# -- the measured run, in a fresh process ----------------------------------------------------


def _config_text(urls: list[str]) -> str:
    sources = "".join(f'[[sources]]\nfeed = "{url}"\n\n' for url in urls)
    # refetch_after = 0: collect_304 collects again at once, which by default leaves every source alone.
    return f'[digest]\ndatabase = "digest.db"\n\n[collect]\nrefetch_after = 0\n\n{sources}'


def _collect_in_child(folder: Path, urls: list[str], name: str) -> dict[str, Any]:
    """Run ``collect()`` once in a spawned process over ``folder/feeds.toml`` (written if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feeds.toml"
    if not path.exists():
        path.write_text(_config_text(urls), encoding="utf-8")
    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_collect_child, args=(str(path), name, writer), name=f"bench-{name}")
    process.start()
    writer.close()
    try:
        if not reader.poll(CHILD_TIMEOUT):
            raise RuntimeError(f"{name}: collect() did not finish within {CHILD_TIMEOUT:g} s")
        result: dict[str, Any] = reader.recv()
    finally:
        process.join(60)
        if process.is_alive():
            process.terminate()
            process.join(5)
    if "error" in result:
        raise RuntimeError(f"{name}: collect() failed in the benchmark process:\n{result['error']}")
    return result


def _collect_child(config_path: str, name: str, out: Connection) -> None:
    """The spawned process: open the store, time one ``collect()``, send back what was measured."""
    try:
        from digest import config
        from digest.collect import collect
        from digest.store import Store

        settings = config.load(config_path)
        with Store.open(settings.database_url) as store:
            gc.collect()
            busy = busy_cpu_s()
            wall, cpu = time.perf_counter(), time.process_time()
            with profiled(name):
                report = collect(settings, store)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            machine_cpu = None if busy is None else (busy_cpu_s() or 0.0) - busy
            posts = store.count_posts()
        workers = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.send(
            {
                "wall_s": wall,
                "main_cpu_s": cpu,
                "workers_cpu_s": workers.ru_utime + workers.ru_stime,
                "machine_cpu_s": machine_cpu,
                "peak_mb": peak_mb(),
                "workers_peak_mb": peak_mb(resource.RUSAGE_CHILDREN),
                "posts": posts,
                "summary": {
                    k: v for k, v in report.as_dict().items() if k not in ("kinds", "notes", "skipped_sources")
                },
            }
        )
    except BaseException:
        out.send({"error": traceback.format_exc()})
    finally:
        out.close()


# -- what the run is compared with ------------------------------------------------------------


def _parse_costs(docs: list[bytes], urls: list[str]) -> dict[str, list[float]]:
    """Per-document CPU seconds, in this one process: feedparser with digest's settings (the floor),
    digest's whole ``parse_feed``, and pickling its result to and from a worker."""
    from digest.collect.parse import parse_feed

    headers = {"content-type": CONTENT_TYPE}
    costs: dict[str, list[float]] = {"feedparser": [], "digest_parse": [], "pickle": []}
    for body, url in zip(docs, urls, strict=True):
        start = time.process_time()
        feedparser.parse(
            body,
            response_headers={**headers, "content-location": url},
            sanitize_html=False,
            resolve_relative_uris=False,
        )
        costs["feedparser"].append(time.process_time() - start)
    for body, url in zip(docs, urls, strict=True):
        start = time.process_time()
        parsed = parse_feed(body, url, f"feed:{url}", CONTENT_TYPE)
        costs["digest_parse"].append(time.process_time() - start)
        start = time.process_time()
        pickle.loads(pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL))
        costs["pickle"].append(time.process_time() - start)
        if len(parsed.posts) != ITEMS:
            raise RuntimeError(f"{url}: digest parsed {len(parsed.posts)} posts, {ITEMS} expected")
    return costs


def _serial_baseline(urls: list[str]) -> dict[str, float]:
    """rss2email's way: one feed at a time, fetch with httpx, parse with feedparser's defaults."""
    entries = 0
    gc.collect()
    start = time.perf_counter()
    with httpx.Client(timeout=30.0, follow_redirects=True) as client:
        for url in urls:
            response = client.get(url)
            response.raise_for_status()
            parsed = feedparser.parse(response.content, response_headers=dict(response.headers))
            entries += len(parsed.entries)
    elapsed = time.perf_counter() - start
    if entries != len(urls) * ITEMS:
        raise RuntimeError(f"serial baseline read {entries} entries, {len(urls) * ITEMS} expected")
    return {"feeds": len(urls), "seconds": elapsed, "per_feed": elapsed / len(urls)}


def _other_cpu(result: dict[str, Any]) -> float | None:
    """CPU the machine spent during collect() on anything but collect, its workers and the feed server."""
    if result.get("machine_cpu_s") is None:
        return None
    ours = result["main_cpu_s"] + result["workers_cpu_s"] + result["server"]["cpu_s"]
    return max(0.0, result["machine_cpu_s"] - ours)


# -- entries -----------------------------------------------------------------------------------


def _collect_entry(
    size: int,
    result: dict[str, Any],
    parse: dict[str, list[float]],
    serial: dict[str, float],
    defaults: Any,
    hosts: int,
    cores: int,
) -> Entry:
    value = result["wall_s"]
    baseline = serial["per_feed"] * size
    latency_floor = size * LATENCY / defaults.concurrency
    feedparser_cpu = sum(parse["feedparser"][:size])
    cpu_floor = feedparser_cpu / cores
    floor = max(latency_floor, cpu_floor)
    ratio, floor_ratio = baseline / value, value / floor
    summary = result["summary"]
    server = result["server"]
    other = _other_cpu(result)
    noise = noise_note(other, value, cpu_count())
    entry: Entry = {
        "value": rounded(value),
        "unit": "s",
        "feeds": size,
        "items_per_feed": ITEMS,
        "posts": result["posts"],
        "baseline": rounded(baseline),
        "baseline_note": (
            f"serial fetch-then-parse (httpx.Client one request at a time, feedparser defaults, as rss2email does) "
            f"measured on {serial['feeds']} feeds ({serial['seconds']:.2f} s) and extrapolated linearly to {size}"
        ),
        "ratio": rounded(ratio, 2),
        "floor": rounded(floor),
        "floor_latency_s": rounded(latency_floor),
        "floor_cpu_s": rounded(cpu_floor),
        "floor_note": (
            f"max({size} x {LATENCY * 1000:.0f} ms / concurrency {defaults.concurrency}, "
            f"feedparser CPU {feedparser_cpu:.2f} s / {cores} cores); feedparser with digest's settings, one process"
        ),
        "floor_ratio": rounded(floor_ratio, 2),
        "peak_mb": result["peak_mb"],
        "workers_peak_mb": result["workers_peak_mb"],
        "target": f"<= {TARGET_FLOOR_RATIO:g}x floor, >= {TARGET_RATIO:g}x baseline",
        "target_met": floor_ratio <= TARGET_FLOOR_RATIO and ratio >= TARGET_RATIO,
        "ok": summary["ok"],
        "failed": summary["failed"],
        "errors": summary["errors"][:3],
        "main_cpu_s": rounded(result["main_cpu_s"]),
        "workers_cpu_s": rounded(result["workers_cpu_s"]),
        "digest_parse_cpu_s": rounded(sum(parse["digest_parse"][:size])),
        "pickle_cpu_s": rounded(sum(parse["pickle"][:size])),
        "feedparser_cpu_s": rounded(feedparser_cpu),
        "server_cpu_s": server["cpu_s"],
        "server_max_in_flight": server["max_in_flight"],
        "server_requests": server["by_status"],
        "server_connections": server["connections"],
        "other_cpu_s": None if other is None else rounded(other),
        "hosts": hosts,
        "per_host": defaults.per_host,
        "concurrency": defaults.concurrency,
        "notes": [
            f"feeds are served from {hosts} local ports, one per simulated Mastodon server, in round-robin order "
            f"({size / hosts:.0f} feeds each), so [collect] per_host = {defaults.per_host} does not cap concurrency",
            "the server is a separate process (asyncio HTTP/1.1, keep-alive, gzip) but shares the machine's "
            f"{cores} cores with collect and its parse workers (server_cpu_s)",
            "collect() runs in a fresh spawned process: peak_mb is its peak RSS, workers_peak_mb the largest "
            "parse worker's; main_cpu_s is the collecting process's CPU, workers_cpu_s its workers' CPU",
            "the floor leaves out digest's own per-post work (digest_parse_cpu_s covers parse_feed in one process, "
            "pickle_cpu_s sending results between processes) and SQLite writes",
        ],
    }
    if noise:
        entry["notes"].append(noise)
    return entry


def _not_modified_entry(size: int, result: dict[str, Any], first: dict[str, Any], defaults: Any) -> Entry:
    value = result["wall_s"]
    floor = size * LATENCY / defaults.concurrency
    summary = result["summary"]
    server = result["server"]
    other = _other_cpu(result)
    noise = noise_note(other, value, cpu_count())
    entry: Entry = {
        "value": rounded(value),
        "unit": "s",
        "feeds": size,
        "not_modified": summary["not_modified"],
        "new_posts": summary["new_posts"],
        "posts": result["posts"],
        "baseline": rounded(first["wall_s"]),
        "baseline_note": "the first collect() of the same feeds into the same store (every feed answering 200)",
        "ratio": rounded(first["wall_s"] / value, 2),
        "floor": rounded(floor),
        "floor_note": f"{size} x {LATENCY * 1000:.0f} ms / concurrency {defaults.concurrency}",
        "floor_ratio": rounded(value / floor, 2),
        "peak_mb": result["peak_mb"],
        "target": f"<= {TARGET_FLOOR_RATIO:g}x its floor",
        "target_met": value / floor <= TARGET_FLOOR_RATIO and summary["not_modified"] == size,
        "main_cpu_s": rounded(result["main_cpu_s"]),
        "workers_cpu_s": rounded(result["workers_cpu_s"]),
        "server_cpu_s": server["cpu_s"],
        "server_max_in_flight": server["max_in_flight"],
        "server_requests": server["by_status"],
        "server_connections": server["connections"],
        "other_cpu_s": None if other is None else rounded(other),
        "notes": [
            "a second run over the first run's store: digest sends If-None-Match with each stored ETag and every "
            "feed answers 304 after the same 50 ms",
        ],
    }
    if noise:
        entry["notes"].append(noise)
    return entry
