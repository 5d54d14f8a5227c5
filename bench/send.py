"""Benchmark: sending a week's editions by SMTP through digest's real path, ``send_week``.

Entries:

- ``send``: 10,000 subscribers (300 with ``--quick``) get their edition through
  ``digest.pipeline.send_week(settings, store, now=...)`` exactly as ``digest send`` runs it: the
  ``[mail] smtp`` setting builds digest's `SmtpMessenger` (``[mail] connections`` reused connections at
  once, the shipped default, no TLS) to a
  local aiosmtpd sink (`bench.smtpsink`, its own process), ``rate`` set high enough never to pace.
  End to end: confirmed subscribers read from the store, the topic filter over the week's ~600
  posts, 20 editions composed (6 topics, 20 distinct selections) and stored, 10,000 deliveries
  queued, then per message signed links, the message rendered from its edition's template, and the
  SMTP transaction, with the store's durable delivery records (``DeliveryLog``: ``handed_over``
  committed before the final dot, ``sent`` after the 250; two commits per message with
  ``PRAGMA synchronous=FULL`` for ``handed_over``, ``NORMAL`` for ``sent``, and TCP_NODELAY on the
  socket, as shipped). Value: messages per second over the whole ``send_week`` call.

``baseline`` is the naive mailer: for each message, render + premailer, build the message, and a
new SMTP connection (EHLO, MAIL, RCPT, DATA, QUIT); no store. It is measured on a sample (50; 10
with ``--quick``) spread over the selections, in its own process with templates compiled, and
extrapolated linearly.

Each run is a freshly spawned process with its own store (SQLite on the temp folder's disk;
``fsync_ms`` is that disk's measured fsync latency); ``peak_mb`` is that process's peak RSS.
Setup (posts and subscribers stored) is untimed. ``steps`` breaks the time down (wrapped
functions; nested ones are included in their callers).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import compose as compose_bench
from . import corpus
from .common import Entry, Stopwatch, Timers, cpu_count, in_child, noise_note, other_cpu, profiled, rounded
from .smtpsink import SmtpSink

if TYPE_CHECKING:
    from digest.compose import Composer, Edition

__all__ = ["run", "settings_text"]

POSTS = 600
CEILING_SHARE = 1.25  # digest, exactly once bookkeeping on, within this factor of the bare client
TARGET_PEAK_MB = 300
SECRET_ENV = "BENCH_DIGEST_SECRET"
BENCH_SECRET = "bench-only-signing-key-0123456789abcdef"  # 32+ characters, as digest requires
SENDER = "Health IT Weekly <digest@hit.example>"
VARIANTS = {"send": "shipped"}


def run(quick: bool) -> dict[str, Entry]:
    """Run the send benchmarks; ``quick`` is 300 messages (baseline on 10), shipped settings only."""
    messages, sample = (300, 10) if quick else (10_000, 50)
    names = ["send"] if quick else list(VARIANTS)
    results: dict[str, dict[str, Any]] = {}
    with SmtpSink() as sink:
        for name in names:
            sink.stats(reset=True)
            result = in_child(_measure, sink.port, messages, VARIANTS[name], name, name=name)
            result["sink"] = sink.stats(reset=True)
            results[name] = result
        baseline = in_child(_baseline, sink.port, messages, sample, name="send-baseline")
        baseline["sink"] = sink.stats(reset=True)
        ceiling = in_child(_ceiling, sink.port, messages, name="send-ceiling")
        ceiling["sink"] = sink.stats(reset=True)
        baseline["ceiling"] = ceiling
    shipped = results["send"]
    return {name: _entry(name, messages, result, baseline, shipped) for name, result in results.items()}


def settings_text(*, smtp: str | None, rate: float = 1_000_000) -> str:
    """A feeds.toml for the benchmarks: the six topics, signed links, SMTP (or the outbox) unpaced."""
    mail = f'smtp = "{smtp}"\ntls = "none"\n' if smtp else 'outbox = "outbox"\n'
    return (
        '[digest]\ntitle = "Health IT Weekly"\ntimezone = "America/New_York"\ndatabase = "digest.db"\n\n'
        f'[mail]\nfrom = "{SENDER}"\n{mail}rate = {rate:g}\n\n'
        f'[subscription]\npublic_url = "https://digest.example.org"\nsecret = "${{{SECRET_ENV}}}"\n\n'
        + corpus.topics_toml()
    )


def edition_due(settings: Any) -> datetime:
    """When the benchmarks run: the send time of the last edition completed by the real clock. Their
    posts are dated in the days before it, so that edition (what `send_week` sends) holds them all."""
    from digest.periods import last_completed

    return last_completed(settings, datetime.now(UTC)).due


def fsync_ms(folder: Path, rounds: int = 20) -> float:
    """The disk's fsync latency under ``folder``, in ms (a 100-byte write and fsync, median of ``rounds``)."""
    path = folder / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(rounds):
            os.write(fd, b"x" * 100)
            start = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    return round(sorted(times)[len(times) // 2] * 1000, 3)


def instrument(timers: Timers) -> float:
    """Wrap the steps of ``send_week`` (and ``digest run``) with timers; return the seconds spent importing
    the modules digest otherwise imports lazily (scikit-learn, premailer), now done before any clock starts."""
    start = time.perf_counter()
    from digest import compose, delivery, pipeline, topics
    from digest.mail import MessageTemplate, SmtpMessenger
    from digest.store import DeliveryLog, SQLStore

    imports_s = time.perf_counter() - start
    loads = iter(range(1_000_000))
    timers.wrap(pipeline, "prepare_editions", "prepare_editions")
    timers.wrap(pipeline, "run_filter", "filter")
    timers.wrap(topics.TopicFilter, "fit", "filter_fit")
    timers.wrap(topics.TopicFilter, "decisions", "filter_decisions")
    timers.wrap(SQLStore, "posts", keyed=lambda *a, **k: f"store_posts_load_{next(loads)}")
    timers.wrap(SQLStore, "documents", "store_documents_load")
    timers.wrap(SQLStore, "save_filter_run", "store_save_decisions")
    timers.wrap(SQLStore, "save_editions", "store_save_editions")
    timers.wrap(SQLStore, "queue_deliveries", "store_queue_deliveries")
    timers.wrap(compose.Composer, "__init__", "compose_prepare")
    timers.wrap(compose.Composer, "edition", "compose_editions")
    timers.wrap(delivery, "recipients", "recipients")
    timers.wrap(delivery, "_deliver", "deliver")
    timers.wrap(delivery, "links_for", "deliver_links")
    timers.wrap(MessageTemplate, "build", "deliver_build_template")
    timers.wrap(MessageTemplate, "render", "deliver_render_message")
    timers.wrap(SmtpMessenger, "push", "deliver_smtp_push")
    timers.wrap(DeliveryLog, "mark", keyed=lambda _self, _d, status, *a, **k: f"deliver_mark_{status}")
    return imports_s


def _patch(variant: str) -> None:
    """Variants were measured here once (synchronous=NORMAL everywhere, TCP_NODELAY); what they showed is
    now shipped, so only the shipped path is left."""
    assert variant == "shipped", variant


# -- the measured runs, each in a fresh process ---------------------------------------------------


def _measure(port: int, messages: int, variant: str, name: str) -> dict[str, Any]:
    from digest import config
    from digest.pipeline import send_week
    from digest.store import Store

    os.environ[SECRET_ENV] = BENCH_SECRET
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-send-"))
    try:
        (folder / "feeds.toml").write_text(settings_text(smtp=f"smtp://127.0.0.1:{port}"), encoding="utf-8")
        settings = config.load(folder / "feeds.toml")
        now = edition_due(settings)
        with Store.open(settings.database_url) as store:
            posts, _ = corpus.posts(POSTS, now=now, seed=11)
            corpus.store_posts(store, posts)
            corpus.store_subscribers(store, compose_bench.people(messages), now)
            _patch(variant)
            timers = Timers()
            imports_s = instrument(timers)
            disk = fsync_ms(folder)
            with Stopwatch() as clock, profiled(name):
                report = send_week(settings, store, now=now)
            statuses: dict[str, int] = {}
            for d in store.deliveries(report.week):
                statuses[d.status] = statuses.get(d.status, 0) + 1
            size = (folder / "digest.db").stat().st_size
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        **clock.as_dict(),
        "sent": len(report.sent),
        "failed": len(report.failed),
        "deferred": len(report.deferred),
        "errors": [r for _, r in (report.failed + report.deferred)[:3]],
        "statuses": statuses,
        "steps": timers.as_dict(),
        "fsync_ms": disk,
        "imports_s": imports_s,
        "db_mb": round(size / 1e6, 1),
        "connections": settings.mail.connections,
    }


def _composer() -> tuple[Composer, list[str]]:
    """The benchmark week's `Composer` and its topic order."""
    from digest.compose import Composer

    posts, kept = compose_bench.week()
    order = [t.name for t in corpus.TOPICS]
    return Composer(posts, kept, topics=order, **compose_bench.SETTINGS), order


def _message(edition: Edition, email: str, name: str, now: datetime) -> bytes:
    """One reader's message of an edition, built as digest builds it (template, then the reader's copy with
    signed feedback links on every card, as `digest.delivery.links_for` gives them), so the same bytes."""
    from digest.feedback import FeedbackLinks
    from digest.mail import Links, MessageTemplate, message_id

    template = MessageTemplate.build(
        subject=edition.subject,
        html=edition.html,
        text=edition.text,
        sender=SENDER,
        reply_to=None,
        list_id="Health IT Weekly <health-it-weekly.hit.example>",
        date=now,
    )
    link = f"https://digest.example.org/unsubscribe/{email}"
    feedback = FeedbackLinks.for_reader("https://digest.example.org", BENCH_SECRET, email)
    links = Links(link, link, link, "mailto:x", feedback=feedback)
    return template.render(email, message_id(edition.week, email, "hit.example"), links, name)


def _baseline(port: int, messages: int, sample: int) -> dict[str, Any]:
    from digest.compose import Tuning, selection
    from digest.mail import SmtpMessenger

    composer, order = _composer()
    composer.edition(corpus.SELECTIONS[-1])  # untimed: compile the templates, build every card
    readers = compose_bench.people(messages)
    step = max(1, messages // sample)
    chosen = [readers[i * step] for i in range(sample)]
    now = datetime.now(UTC)
    url = f"smtp://127.0.0.1:{port}"
    with Stopwatch() as clock, profiled("send-baseline"):
        for email, name, topics in chosen:
            edition = composer._compose(selection(topics, order), Tuning())  # render + premailer for this message
            assert edition is not None
            message = _message(edition, email, name, now)
            messenger = SmtpMessenger(url, "none")  # a new connection per message
            try:
                messenger.push("digest@hit.example", email, message, lambda: None)
            finally:
                messenger.close()
    return {**clock.as_dict(), "sample": sample}


def _ceiling(port: int, messages: int) -> dict[str, Any]:
    """The sink's own ceiling: a bare client (smtplib, one connection, TCP_NODELAY) sending messages built
    beforehand (one per selection, digest's own, each sent to its share of the readers): no store, no rendering."""
    import smtplib
    import socket

    composer, _ = _composer()
    now = datetime.now(UTC)
    editions = [e for e in map(composer.edition, corpus.SELECTIONS) if e is not None]
    built = [_message(e, f"reader{i}@example.org", "", now) for i, e in enumerate(editions)]
    readers = [email for email, _, _ in compose_bench.people(messages)]
    with Stopwatch() as clock, profiled("send-ceiling"):
        client = smtplib.SMTP("127.0.0.1", port, timeout=60)
        if client.sock is not None:  # connected: replies are not held back by Nagle, as in digest's own
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for i, email in enumerate(readers):
                client.sendmail("digest@hit.example", [email], built[i % len(built)])
        finally:
            client.quit()
    return {**clock.as_dict(), "messages": messages, "message_kb": rounded(sum(map(len, built)) / len(built) / 1e3, 1)}


# -- entries ----------------------------------------------------------------------------------------


def _steps(steps: dict[str, dict[str, float]]) -> dict[str, float]:
    s = {k: v["s"] for k, v in steps.items()}
    marks = s.get("deliver_mark_handed_over", 0.0) + s.get("deliver_mark_sent", 0.0)
    return {
        "recipients_s": rounded(s.get("recipients", 0.0)),
        "filter_s": rounded(s.get("filter", 0.0)),
        "filter_fit_s": rounded(s.get("filter_fit", 0.0) + s.get("filter_decisions", 0.0)),
        "compose_s": rounded(s.get("prepare_editions", 0.0) - s.get("filter", 0.0)),
        "compose_render_s": rounded(s.get("compose_editions", 0.0)),
        "queue_s": rounded(s.get("store_queue_deliveries", 0.0)),
        "deliver_s": rounded(s.get("deliver", 0.0)),
        "deliver_links_s": rounded(s.get("deliver_links", 0.0)),
        "deliver_render_s": rounded(s.get("deliver_render_message", 0.0) + s.get("deliver_build_template", 0.0)),
        "deliver_smtp_s": rounded(s.get("deliver_smtp_push", 0.0) - s.get("deliver_mark_handed_over", 0.0)),
        "deliver_commits_s": rounded(marks),
    }


def _entry(
    name: str, messages: int, result: dict[str, Any], baseline: dict[str, Any], shipped: dict[str, Any]
) -> Entry:
    value = messages / result["wall_s"]
    base_rate = baseline["sample"] / baseline["wall_s"]
    ceiling = baseline["ceiling"]
    ceiling_rate = ceiling["messages"] / ceiling["wall_s"]
    sink = result["sink"]
    other = other_cpu(result["machine_cpu_s"], result["cpu_s"], sink["cpu_s"])
    steps = _steps(result["steps"])
    commits = result["steps"].get("deliver_mark_handed_over", {}).get("calls", 0) + result["steps"].get(
        "deliver_mark_sent", {}
    ).get("calls", 0)
    ok = result["sent"] == messages and sink["messages"] == messages and sink["recipients"] == messages
    entry: Entry = {
        "value": rounded(value, 1),
        "unit": "messages/s",
        "size": f"{messages:,} messages",
        "messages": messages,
        "editions": result["steps"].get("deliver_build_template", {}).get("calls", 0),
        "variant": (
            f"as shipped ([mail] connections = {result['connections']}; handed_over fsynced, sent not; TCP_NODELAY)"
        ),
        "connections": result["connections"],
        "seconds": rounded(result["wall_s"]),
        **steps,
        "deliver_rate": rounded(messages / steps["deliver_s"], 1) if steps["deliver_s"] else None,
        "commits": commits,
        "commit_ms": rounded(1000 * steps["deliver_commits_s"] / commits, 3) if commits else None,
        "fsync_ms": result["fsync_ms"],
        "imports_s": rounded(result["imports_s"]),
        "sent": result["sent"],
        "failed": result["failed"],
        "deferred": result["deferred"],
        "errors": result["errors"],
        "statuses": result["statuses"],
        "sink_messages": sink["messages"],
        "sink_recipients": sink["recipients"],
        "sink_connections": sink["connections"],
        "sink_mb": rounded(sink["bytes"] / 1e6, 1),
        "sink_limit": rounded(sink["messages"] / sink["cpu_s"], 1) if sink["cpu_s"] else None,
        "baseline": rounded(base_rate, 2),
        "baseline_note": (
            f"naive mailer: render + premailer, build the message and a new SMTP connection (EHLO ... QUIT) per "
            f"message, no store; measured on {baseline['sample']} messages ({baseline['wall_s']:.2f} s, own process, "
            f"templates compiled) and extrapolated linearly to {messages:,}: {messages / base_rate:,.0f} s"
        ),
        "ratio": rounded(value / base_rate, 1),
        "peak_mb": result["peak_mb"],
        "ceiling": rounded(ceiling_rate, 1),
        "ceiling_note": (
            f"the sink's own ceiling in this run: a bare smtplib client on one connection sending messages built "
            f"beforehand ({ceiling['message_kb']} kB each), no store: {ceiling['wall_s']:.1f} s for {messages:,}"
        ),
        "vs_ceiling": rounded(value / ceiling_rate, 2),
        "target": f">= 1/{CEILING_SHARE:g} of the sink's ceiling measured in the same run, peak <= {TARGET_PEAK_MB} MB",
        "target_met": ok and value * CEILING_SHARE >= ceiling_rate and result["peak_mb"] <= TARGET_PEAK_MB,
        "main_cpu_s": rounded(result["cpu_s"]),
        "sink_cpu_s": sink["cpu_s"],
        "baseline_sink_cpu_s": baseline["sink"]["cpu_s"],
        "other_cpu_s": None if other is None else rounded(other),
        "notes": [
            "send_week() end to end in a fresh process (recipients, filter, compose, store editions, queue, "
            "deliver), digest's lazy imports (scikit-learn, premailer: imports_s) done before the clock; *_s keys are wrapped steps (deliver_smtp_s excludes the handed_over commit made inside push); "
            "deliver_commits_s is both DeliveryLog commits per message",
            "the sink is aiosmtpd in its own process; it reads DATA line by line in Python, so sink_cpu_s is "
            "large and sink_limit (messages / sink CPU) bounds any client on this machine; on the ceiling's one "
            "connection the exchange is strictly one message at a time, so client and sink time add up, while "
            "digest's connections overlap them",
        ],
    }
    if name != "send" and shipped is not result:
        entry["vs_shipped"] = rounded(value / (messages / shipped["wall_s"]), 2)
    if not ok:
        entry["notes"].append(
            f"not every message arrived: sent {result['sent']}, sink {sink['messages']} "
            f"({sink['recipients']} addresses) of {messages}"
        )
    noise = noise_note(other, result["wall_s"], cpu_count())
    if noise:
        entry["notes"].append(noise)
    return entry
