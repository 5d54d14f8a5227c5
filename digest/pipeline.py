"""The weekly job, `run_week`, as numbered steps a reader follows top to bottom, and the steps it is made of.

Each step takes the previous step's output and is also a command of its own: collect (`digest collect`),
filter (`digest filter`), compose (`digest preview`), send (`digest send`, `send_week`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .config import Settings
from .errors import DigestError
from .models import Document, Edition, Post, Publication, Recipient
from .periods import Period, edition_for, in_progress, last_completed
from .store import FilterRun, Store

if TYPE_CHECKING:
    from .chats import Recap
    from .collect import CollectReport, SourceResult
    from .collect.base import Job
    from .compose import Composer
    from .delivery import SendReport
    from .feedback import Signal
    from .mail import Messenger
    from .topics import Explanation, NoiseProfile

__all__ = [
    "WeekReport",
    "chat_recaps",
    "composer_for",
    "composer_from_run",
    "explain_post",
    "last_chat_recap",
    "noise_profile",
    "prepare_editions",
    "publication_names",
    "readers_editions",
    "run_filter",
    "run_week",
    "send_week",
]


@dataclass(frozen=True, slots=True)
class WeekReport:
    """What `run_week` did: step 1's collection and steps 2 to 4's send."""

    collected: CollectReport
    sent: SendReport


def run_week(
    settings: Settings,
    store: Store,
    now: datetime,
    *,
    jobs: list[Job] | None = None,
    on_result: Callable[[SourceResult], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> WeekReport:
    """The weekly job (`digest run`, `digest serve`'s weekly send), for the edition that is due at ``now``:

    1. collect   every source (or ``jobs``), into the store; ``on_result`` hears of each source
    2. filter    the edition's posts by topic, each decision kept            (`run_filter`)
    3. compose   one edition per topic selection, stored once for the week   (`prepare_editions`)
    4. send      each subscriber's copy, exactly once; ``on_progress`` counts (`delivery.deliver`)
    """
    from . import collect  # looked up when called, as `bench` times it

    collected = collect.collect(settings, store, now=now, jobs=jobs, on_result=on_result)
    return WeekReport(collected, send_week(settings, store, now=now, on_progress=on_progress))


def send_week(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    week: str | None = None,
    only: str | None = None,
    dry_run: bool = False,
    messenger: Messenger | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SendReport:
    """Steps 2 to 4 for one edition (default: the last completed one, see `periods`), to every confirmed
    subscriber (or ``only`` one) who has not had it: `digest send`. The week's editions are filtered and
    composed once; a re-run sends the stored ones. A dry run plans and sends nothing."""
    from .delivery import deliver, recipients

    period = edition_for(settings, week, now, complete=True)
    people = recipients(settings, store, now, only)
    paths = prepare_editions(settings, store, people, now=now, period=period)  # steps 2 and 3
    return deliver(
        settings, store, period, people, paths, now=now, dry_run=dry_run, messenger=messenger, on_progress=on_progress
    )


def noise_profile(settings: Settings) -> NoiseProfile:
    """The built-in noise profile, extended (or replaced) by ``[noise]``."""
    from .topics import DEFAULT_NOISE, NoiseProfile

    n = settings.noise
    keywords = n.keywords if n.replace else DEFAULT_NOISE.keywords + n.keywords
    return NoiseProfile(n.description or DEFAULT_NOISE.description, tuple(dict.fromkeys(keywords)))


def run_filter(
    settings: Settings, store: Store, *, now: datetime, period: tuple[datetime, datetime] | None = None
) -> FilterRun:
    """Step 2: decide the topics of every post in the period (default: the edition in progress), record each."""
    since, until = period or _span(in_progress(settings, now))
    from .topics import TopicFilter  # scikit-learn loads only for the commands that need it

    if not settings.topics:
        raise DigestError(f"{settings.path}: no [[topics]] configured; the filter needs at least one")
    from .curate import accept_agreed, taught_topics

    accept_agreed(settings, store, now)
    specs, noise = taught_topics(settings, store)
    # the documents only, not the posts: the week's HTML is not held while the filter fits
    ids, docs = _unzip(store.documents(since, until))
    decisions = TopicFilter(specs, noise=noise).fit(docs).decisions()
    del docs
    names = tuple(t.name for t in settings.topics)
    verdicts = list(zip(ids, decisions, strict=True))
    run_id = store.save_filter_run(now, since, until, names, verdicts)
    return FilterRun(run_id, now, since, until, names, verdicts)


def explain_post(settings: Settings, store: Store, id_or_url: str, top: int = 8) -> tuple[Post, Explanation]:
    """Re-run the last filter run's batch (deterministic) and explain one of its posts."""
    from .topics import TopicFilter

    post = store.post(id_or_url)
    if post is None:
        raise DigestError(f"no stored post has the id or URL {id_or_url!r}")
    run = store.last_filter_run()
    if run is None:
        raise DigestError("the filter has not run yet; run `digest filter` first")
    ids = [pid for pid, _ in run.verdicts]
    if post.id not in ids:
        raise DigestError(
            f"post {post.id} was not in the last filter run ({run.since:%Y-%m-%d} to {run.until:%Y-%m-%d})"
        )
    posts = {p.id: p for p in store.posts(run.since, run.until)}
    batch = [posts[pid] for pid in ids if pid in posts]
    from .curate import taught_topics

    taught, noise = taught_topics(settings, store)
    specs = [t for t in taught if t.name in run.topics]
    fitted = TopicFilter(specs, noise=noise).fit([p.document() for p in batch])
    return post, fitted.explain([p.id for p in batch].index(post.id), top)


def _unzip(documents: list[Document]) -> tuple[list[str], list[str]]:
    return [d.id for d in documents], [d.text for d in documents]


def _span(period: Period) -> tuple[datetime, datetime]:
    return period.since, period.until


def composer_for(settings: Settings, store: Store, *, now: datetime, period: Period | None = None) -> Composer:
    """Steps 2 and 3: filter the edition's posts (default: the edition in progress), then prepare the
    composer that renders every selection."""
    period = period or in_progress(settings, now)
    # the run is handed on, not kept here: its decisions are freed before the week's posts are loaded
    return composer_from_run(
        settings, store, run_filter(settings, store, now=now, period=_span(period)), week=period.week, now=now
    )


def composer_from_run(
    settings: Settings, store: Store, run: FilterRun, *, week: str, now: datetime, posts: Sequence[Post] | None = None
) -> Composer:
    """Step 3 from a recorded filter run (step 2's output): the composer of its period's editions, whose
    `Composer.counts` and `Composer.left_out` are what the edition, the left-out page and the CLI show."""
    from .compose import Composer

    kept = {pid: {t: d.scores[t] for t in d.topics} for pid, d in run.verdicts if d.topics}
    best = {pid: max(scores.values()) for pid, scores in kept.items()}
    since, until = run.since, run.until
    del run  # every post's decision (100,000 of them at community scale) need not sit beside the posts
    return Composer(
        store.posts(since, until) if posts is None else posts,
        kept,
        title=settings.digest.title,
        timezone=settings.digest.timezone,
        week=week,
        now=now,
        topics=[t.name for t in settings.topics],
        period=(since, until),
        public_url=settings.subscription.public_url,
        quiet_week=settings.digest.quiet_week,
        templates_dir=settings.templates_dir,
        chats=chat_recaps(settings, store, since=since, until=until, topic_scores=best),
        publications=publication_names(settings, store),
    )


def publication_names(settings: Settings, store: Store) -> dict[str, Publication]:
    """Each feed as its readers know it, by source key: feeds.toml's ``name``, else the feed's own title
    as last collected. A feed with neither is left out (its cards show its host)."""
    from .config import FeedSource

    titles = {key: state.title for key, state in store.source_states().items() if state.title}
    names: dict[str, Publication] = {}
    for source in settings.sources:
        title = titles.get(source.key, "") if isinstance(source, FeedSource) else ""
        if isinstance(source, FeedSource) and (source.name or title):
            names.setdefault(source.key, Publication(source.name or title, title))
    return names


def chat_recaps(
    settings: Settings,
    store: Store,
    *,
    since: datetime,
    until: datetime,
    topic_scores: dict[str, float] | None = None,
) -> list[Recap]:
    """The recaps of every configured chat that ended in ``(since, until]``, oldest first; a window
    with nothing collected is left out. ``topic_scores``: each kept post's best topic score."""
    from .chats import chat_windows, recap

    found = []
    for chat in settings.chats:
        server = _chat_server(settings, chat.hashtag)
        for window in chat_windows(chat, since, until, settings.digest.timezone):
            made = recap(store.posts(*window), chat, window, topic_scores, server=server)
            if not made.empty:
                found.append(made)
    return sorted(found, key=lambda r: (r.start, r.hashtag))


def last_chat_recap(settings: Settings, store: Store, *, now: datetime, period: Period | None = None) -> Recap | None:
    """The recap of the last chat that ended in an edition's period (default: the one in progress, or
    the last completed one when no chat has ended in it yet), with topic scores from the last filter
    run (nothing is recorded). None when no chat ended then."""
    from .chats import chat_windows, recap

    periods = [period] if period else [in_progress(settings, now), last_completed(settings, now)]
    for span in periods:
        windows = [
            (window, chat)
            for chat in settings.chats
            for window in chat_windows(chat, span.since, span.until, settings.digest.timezone)
        ]
        if windows:
            break
    else:
        return None
    window, chat = max(windows, key=lambda w: (w[0][1], w[1].hashtag))
    run = store.last_filter_run()
    scores = None  # no filter run over the chat: no post counts as chatter
    if run is not None and run.since <= window[0] and window[1] <= run.until:
        scores = {pid: max(d.scores[t] for t in d.topics) for pid, d in run.verdicts if d.topics}
    return recap(store.posts(*window), chat, window, scores, server=_chat_server(settings, chat.hashtag))


def _chat_server(settings: Settings, hashtag: str) -> str | None:
    """The first Mastodon server the chat's hashtag is read from: its page links the whole thread."""
    from .config import HashtagSource

    for source in settings.sources:
        if isinstance(source, HashtagSource) and source.hashtag.lower() == hashtag.lower():
            servers = source.servers or settings.collect.servers
            return servers[0] if servers else None
    return None


def prepare_editions(
    settings: Settings, store: Store, people: Sequence[Recipient], *, now: datetime, period: Period
) -> dict[str, str]:
    """Step 3 for sending: the week's editions for every selection these subscribers have, composed
    once and stored (so a re-run sends the same ones), and a reader's own copy when their signals hide or
    raise a post of the week (`readers_editions`). Returns each address's edition path; an address whose
    selection has nothing this week (and no quiet-week note) is left out."""
    from .compose import edition_path, selection

    label = period.week
    names = [t.name for t in settings.topics]
    wanted = {r.email: selection([t for t in (r.topics or names) if t in names] or names, names) for r in people}
    stored = store.editions(label)
    missing = {edition_path(label, sel): sel for sel in wanted.values()}.keys() - stored.keys()
    composer = None
    if missing:
        composer = composer_for(settings, store, now=now, period=period)
        made = [composer.edition(sel) for sel in dict.fromkeys(wanted.values())]
        store.save_editions(label, [e for e in made if e], now)
        stored = store.editions(label)
    paths = {email: edition_path(label, sel) for email, sel in wanted.items() if edition_path(label, sel) in stored}
    signals = _signals_by_reader(store, paths.keys())
    if signals:
        composer = composer or _stored_composer(settings, store, label, stored, now)
        if composer is not None:
            paths.update(readers_editions(store, composer, {e: wanted[e] for e in signals}, signals, now))
    return paths


def _signals_by_reader(store: Store, emails: Iterable[str]) -> dict[str, list[Signal]]:
    mine: dict[str, list[Signal]] = {}
    wanted = set(emails)
    for signal in store.signals():
        if signal.email in wanted:
            mine.setdefault(signal.email, []).append(signal)
    return mine


def _stored_composer(
    settings: Settings, store: Store, week: str, stored: dict[str, Edition], now: datetime
) -> Composer | None:
    """The composer of a week whose editions are stored: from the filter run they were composed from."""
    if not stored:
        return None
    composed = min(e.created_at for e in stored.values() if e.created_at is not None)
    run = store.last_filter_run(at_or_before=composed)
    return composer_from_run(settings, store, run, week=week, now=now) if run is not None else None


def readers_editions(
    store: Store,
    composer: Composer,
    selections: dict[str, tuple[str, ...]],
    signals: dict[str, list[Signal]],
    now: datetime,
) -> dict[str, str]:
    """Each reader's own copy where their signals hide or raise one of the week's posts (`feedback.Likeness`),
    composed and stored under `compose.Tuning.path`; returns those readers' paths."""
    from .compose import Tuning
    from .feedback import Likeness
    from .rank import account_key

    likeness = Likeness([s.post for s in composer.stories if composer.kept[s.post.id]], account_key)
    paths: dict[str, str] = {}
    made = []
    for email, sel in selections.items():
        tuning = Tuning(*likeness.adjust(signals[email]))
        if not tuning:
            continue
        edition = composer.edition(sel, tuning)
        if edition is not None:
            made.append(edition)
            paths[email] = edition.path
    if made:
        week = made[0].week
        store.save_editions(week, list(dict.fromkeys(made)), now)
    return paths
