"""Benchmark: the whole weekly job, ``digest run``, on a store holding a full week.

Entry ``weekly``: a store with 100,000 posts from 2,000 feed sources (10,000 from 200 with
``--quick``), all published in the last 6.5 days, and 1,000 confirmed subscribers (50 with
``--quick``) over the 20 topic selections of six topics. ``digest run --json --quiet`` then runs
end to end, in-process through digest's CLI entry point: collect every source (each answers ``304
Not Modified``: the store's source state already holds the ETag the local `FeedServer` serves,
after its 50 ms latency), filter the week's posts, compose one edition per selection, and send
every subscriber their copy into the outbox folder (no ``[mail] smtp``: one fsynced ``.eml`` file
per message, plus the two durable delivery records per message). Value: seconds for the whole
run. ``steps`` (and the ``*_s`` keys) break it down by wrapping digest's functions; nested steps
are included in their callers (``filter_s`` includes reading the week's documents and saving the
decisions; the composer loads the week's posts after it, so the filter never holds their HTML).

The store is filled in one spawned process (untimed, with the store API: ``add_posts`` per
source, with the source state and its ETag), the run happens in another, so ``peak_mb`` is the
peak RSS of the process that ran ``digest run`` (imports done before the clock starts).
The baseline is the same job at `baseline.COMMIT` (main before the job streamed), run on a copy of the
same store after today's run (`bench.baseline`); the target is issue 16's: peak <= 300 MB and wall time
<= 1/3 of the baseline's.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import baseline, corpus
from . import compose as compose_bench
from .common import Entry, Stopwatch, Timers, cpu_count, in_child, noise_note, other_cpu, profiled, rounded
from .mastodon_rss import make_feed
from .send import BENCH_SECRET, SECRET_ENV, edition_due, fsync_ms, instrument, settings_text
from .server import FeedServer

__all__ = ["run"]

LATENCY = 0.05
FEEDS_PER_HOST = 10
MIN_HOSTS = 25
TARGET_PEAK_MB = 300  # at 100,000 posts (issue 16)
TARGET_RATIO = 3.0  # wall time at most a third of the old job's, measured in the same run


def run(quick: bool) -> dict[str, Entry]:
    """Run the weekly benchmark; ``quick`` is 10,000 posts, 200 sources and 50 subscribers."""
    posts, sources, subscribers = (10_000, 200, 50) if quick else (100_000, 2_000, 1_000)
    hosts = max(MIN_HOSTS, -(-sources // FEEDS_PER_HOST))
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-weekly-"))
    try:
        now = _due(folder)
        with FeedServer(sources, hosts=hosts, latency=LATENCY, now=now) as server:
            validators = []
            for i in range(sources):
                doc = make_feed(i, host_index=i % hosts, seed=server.seed, now=now)
                validators.append((doc.etag, doc.last_modified))
            setup = in_child(
                _setup, str(folder), server.urls, validators, posts, subscribers, now.timestamp(), name="weekly-setup"
            )
            old = _copy_store(folder, folder / "baseline-run")
            server.stats(reset=True)
            result = in_child(_measure, str(folder), now.timestamp(), name="weekly")
            result["server"] = server.stats()
            result["baseline"] = _baseline(folder, old, now)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"weekly": _entry(posts, sources, subscribers, hosts, setup, result)}


def _copy_store(folder: Path, dest: Path) -> Path:
    """The set-up store and its feeds.toml, copied before today's run changes them: the baseline's input."""
    dest.mkdir()
    for name in ("feeds.toml", "digest.db"):
        shutil.copy2(folder / name, dest / name)
    return dest / "feeds.toml"


def _baseline(folder: Path, config: Path, now: datetime) -> dict[str, Any] | None:
    """The old job (`baseline.COMMIT`) on the copy of the same store, after today's, against the same server."""
    tree = baseline.checkout(folder)
    if tree is None:
        return None
    return baseline.run_week(tree, config, {SECRET_ENV: BENCH_SECRET, "DIGEST_NOW": now.isoformat()})


# -- setup and the measured run, each in a fresh process --------------------------------------------


def _setup(
    folder: str,
    urls: list[str],
    validators: list[tuple[str, str]],
    posts: int,
    subscribers: int,
    now_ts: float,
) -> dict[str, Any]:
    from digest import config
    from digest.models import SourceState
    from digest.store import Store

    path = Path(folder) / "feeds.toml"
    sources = "".join(f'[[sources]]\nfeed = "{url}"\n\n' for url in urls)
    path.write_text(settings_text(smtp=None) + sources, encoding="utf-8")
    os.environ[SECRET_ENV] = BENCH_SECRET
    settings = config.load(path)
    now = datetime.fromtimestamp(now_ts, UTC)
    with Stopwatch() as clock, Store.open(settings.database_url) as store:
        items, _ = corpus.posts(posts, now=now, seed=17, sources=urls)
        newest: dict[str, datetime] = {}
        for post in items:
            newest[post.source] = max(post.published, newest.get(post.source, post.published))
        states = {
            f"feed:{url}": SourceState(
                key=f"feed:{url}",
                kind="feed",
                url=url,
                status="ok",
                last_attempt=now - timedelta(hours=1),
                last_success=now - timedelta(hours=1),
                etag=etag,
                last_modified=last_modified,
                newest_post=newest.get(f"feed:{url}"),
            )
            for url, (etag, last_modified) in zip(urls, validators, strict=True)
        }
        stored = corpus.store_posts(store, items, states)
        corpus.store_subscribers(store, compose_bench.people(subscribers), now)
    return {
        "setup_s": clock.wall_s,
        "posts": stored,
        "db_mb": round((Path(folder) / "digest.db").stat().st_size / 1e6, 1),
    }


def _due(folder: Path) -> datetime:
    """The moment the benchmark runs at (`send.edition_due`), from its own schedule."""
    from digest import config

    os.environ[SECRET_ENV] = BENCH_SECRET
    (folder / "feeds.toml").write_text(settings_text(smtp=None), encoding="utf-8")
    return edition_due(config.load(folder / "feeds.toml"))


def _measure(folder: str, now_ts: float) -> dict[str, Any]:
    import digest.cli as cli

    os.environ[SECRET_ENV] = BENCH_SECRET
    os.environ["DIGEST_NOW"] = datetime.fromtimestamp(now_ts, UTC).isoformat()  # `digest run` at the send time
    timers = Timers()
    imports_s = instrument(timers)
    # the CLI imports them when the command runs, from their modules: wrapped there, they are what it calls
    timers.wrap(importlib.import_module("digest.collect"), "collect", "collect")
    timers.wrap(importlib.import_module("digest.pipeline"), "send_week", "send_week")
    disk = fsync_ms(Path(folder))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), Stopwatch() as clock, profiled("weekly"):
        cli.main(["--config", str(Path(folder) / "feeds.toml"), "run", "--json", "--quiet"])
    report = json.loads(out.getvalue())
    week = report["send"]["week"]
    outbox = Path(folder) / "outbox" / week
    files = list(outbox.glob("*.eml")) if outbox.is_dir() else []
    return {
        **clock.as_dict(),
        "collect": {k: v for k, v in report["collect"].items() if k not in ("notes", "skipped_sources", "kinds")},
        "send": {k: report["send"][k] for k in ("recipients", "sent", "failed", "deferred", "nothing_to_send")},
        "outbox_files": len(files),
        "outbox_mb": round(sum(f.stat().st_size for f in files) / 1e6, 1),
        "steps": timers.as_dict(),
        "fsync_ms": disk,
        "imports_s": imports_s,
        "workers_cpu_s": _children_cpu(),
    }


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _against_baseline(wall_s: float, peak: float, old: dict[str, Any] | None) -> Entry:
    """The ratio to the old job measured in the same run, and the issue's target for the weekly job."""
    target = f"peak <= {TARGET_PEAK_MB} MB and wall <= 1/{TARGET_RATIO:g} of the baseline's"
    if old is None:
        return {"target": target, "baseline_note": f"not measured: no git history holding {baseline.COMMIT[:7]}"}
    return {
        "baseline": rounded(old["wall_s"]),
        "ratio": rounded(old["wall_s"] / wall_s),
        "baseline_peak_mb": old["peak_mb"],
        "baseline_sent": old["sent"],
        "baseline_note": f"the same job at {baseline.COMMIT[:7]} (main before it streamed), `git archive` of digest/ run "
        "in a fresh interpreter on a copy of the same store, after today's run, against the same feed server",
        "target": target,
        "target_met": peak <= TARGET_PEAK_MB and old["wall_s"] / wall_s >= TARGET_RATIO,
    }


# -- entry -------------------------------------------------------------------------------------------


def _entry(
    posts: int, sources: int, subscribers: int, hosts: int, setup: dict[str, Any], result: dict[str, Any]
) -> Entry:
    s = {k: v["s"] for k, v in result["steps"].items()}
    calls = {k: v["calls"] for k, v in result["steps"].items()}
    collect, send = result["collect"], result["send"]
    server = result["server"]
    other = other_cpu(result["machine_cpu_s"], result["cpu_s"], result["workers_cpu_s"], server["cpu_s"])
    compose_s = s.get("prepare_editions", 0.0) - s.get("filter", 0.0)
    deliver = s.get("deliver", 0.0)
    marks = s.get("deliver_mark_handed_over", 0.0) + s.get("deliver_mark_sent", 0.0)
    render = s.get("deliver_render_message", 0.0) + s.get("deliver_build_template", 0.0)
    send_other = s.get("send_week", 0.0) - s.get("prepare_editions", 0.0) - deliver
    entry: Entry = {
        "value": rounded(result["wall_s"]),
        "unit": "s",
        "size": f"{posts:,} posts, {sources:,} sources, {subscribers:,} subscribers",
        "posts": setup["posts"],
        "sources": sources,
        "subscribers": subscribers,
        "collect_s": rounded(s.get("collect", 0.0)),
        "filter_s": rounded(s.get("filter", 0.0)),
        "compose_s": rounded(compose_s),
        "send_s": rounded(deliver),
        "send_other_s": rounded(send_other),
        "breakdown": {
            "store_documents_load_s": rounded(s.get("store_documents_load", 0.0)),
            "store_posts_load_s": rounded(s.get("store_posts_load_0", 0.0)),
            "filter_fit_s": rounded(s.get("filter_fit", 0.0)),
            "filter_decisions_s": rounded(s.get("filter_decisions", 0.0)),
            "store_save_decisions_s": rounded(s.get("store_save_decisions", 0.0)),
            "compose_prepare_s": rounded(s.get("compose_prepare", 0.0)),
            "compose_editions_s": rounded(s.get("compose_editions", 0.0)),
            "compose_editions_calls": calls.get("compose_editions", 0),
            "store_save_editions_s": rounded(s.get("store_save_editions", 0.0)),
            "recipients_s": rounded(s.get("recipients", 0.0)),
            "queue_s": rounded(s.get("store_queue_deliveries", 0.0)),
            "deliver_render_s": rounded(render),
            "deliver_links_s": rounded(s.get("deliver_links", 0.0)),
            "deliver_commits_s": rounded(marks),
            "deliver_outbox_write_s": rounded(deliver - marks - render - s.get("deliver_links", 0.0)),
        },
        "steps": result["steps"],
        "peak_mb": result["peak_mb"],
        "setup_s": rounded(setup["setup_s"]),
        "db_mb": setup["db_mb"],
        "fsync_ms": result["fsync_ms"],
        "imports_s": rounded(result["imports_s"]),
        "not_modified": collect.get("not_modified"),
        "new_posts": collect.get("new_posts"),
        "collect_failed": collect.get("failed"),
        "errors": collect.get("errors", [])[:3],
        "sent": send["sent"],
        "failed": len(send["failed"]),
        "deferred": len(send["deferred"]),
        "nothing_to_send": len(send["nothing_to_send"]),
        "outbox_files": result["outbox_files"],
        "outbox_mb": result["outbox_mb"],
        "collect_floor_s": rounded(sources * LATENCY / 50),
        "main_cpu_s": rounded(result["cpu_s"]),
        "workers_cpu_s": rounded(result["workers_cpu_s"]),
        "server_cpu_s": server["cpu_s"],
        "server_requests": server["by_status"],
        "other_cpu_s": None if other is None else rounded(other),
        "notes": [
            f"`digest run --json --quiet` in-process (digest.cli.main) in a fresh process, digest's lazy imports "
            f"(imports_s) done before the clock; {sources:,} feeds on "
            f"{hosts} local ports, each answering 304 after {LATENCY * 1000:.0f} ms (collect_floor_s = sources x "
            "latency / concurrency 50); mail goes to the outbox (one fsynced .eml per message)",
            "the filter reads the week's documents only (breakdown: store_documents_load_s), the composer then "
            "loads the posts (store_posts_load_s); "
            "filter_s includes saving every decision; compose_s composes one edition per selection; send_s is "
            "the delivery loop; send_other_s is recipients and queueing",
        ],
    }
    entry.update(_against_baseline(result["wall_s"], result["peak_mb"], result["baseline"]))
    if send["sent"] != subscribers or collect.get("not_modified") != sources:
        entry["notes"].append(
            f"unexpected: sent {send['sent']} of {subscribers}, {collect.get('not_modified')} of {sources} sources "
            "answered 304"
        )
    noise = noise_note(other, result["wall_s"], cpu_count())
    if noise:
        entry["notes"].append(noise)
    return entry
