"""The weekly job as numbered steps a reader follows top to bottom; each step is also a command.

1. collect   every source, into the store            (digest collect)
2. filter    the window's posts by topic, recorded    (digest filter)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .config import Settings
from .errors import DigestError
from .models import Post
from .store import FilterRun, Store

__all__ = ["explain_post", "run_filter", "window"]


def window(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The span an edition covers: the ``days`` before ``now``."""
    return now - timedelta(days=days), now


def run_filter(settings: Settings, store: Store, *, now: datetime) -> FilterRun:
    """Step 2: decide the topics of every post in the window, and record each decision."""
    from .topics import TopicFilter  # scikit-learn loads only for the commands that need it

    if not settings.topics:
        raise DigestError(f"{settings.path}: no [[topics]] configured; the filter needs at least one")
    since, until = window(now, settings.digest.window_days)
    posts = store.posts(since, until)
    decisions = TopicFilter(settings.topics).fit([p.document() for p in posts]).decisions()
    names = [t.name for t in settings.topics]
    store.save_filter_run(now, since, until, names, list(zip((p.id for p in posts), decisions, strict=True)))
    run = store.last_filter_run()
    assert run is not None
    return run


def explain_post(settings: Settings, store: Store, id_or_url: str, top: int = 8) -> tuple[Post, object]:
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
    specs = [t for t in settings.topics if t.name in run.topics]
    fitted = TopicFilter(specs).fit([p.document() for p in batch])
    return post, fitted.explain([p.id for p in batch].index(post.id), top)
