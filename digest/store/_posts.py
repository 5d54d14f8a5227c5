"""The posts' table, with the sources each post was seen through and the links it carries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .. import clock
from ..models import Author, Document, Engagement, Media, Post, SourceState, document_of
from ..textnorm import strip_invisible
from ._engine import Records, guarded, retried
from ._schema import post_links, post_sources, posts, sources
from ._sources import save_states
from ._sql import existing, from_json, insert_new, select_in

__all__ = ["PostRecords"]


_ENGAGEMENT = ("replies", "boosts", "likes", "quotes")
_LISTS = ("tags", "mentions", "links", "media")
_SIMPLE = tuple(f.name for f in fields(Post) if f.name in posts.c and f.name not in _LISTS)
# the columns a Post is read from, in `_row_post`'s order (not collected_at: no Post field)
POST_COLUMNS = tuple(
    posts.c[n] for n in (*_SIMPLE, "author_name", "author_handle", "author_url", *_LISTS, *_ENGAGEMENT)
)
# Fresh counts for posts seen again; a count the source does not give (None) keeps the stored one.
_ENGAGEMENT_UPDATE = (
    posts.update()
    .where(posts.c.id == sa.bindparam("_id"))
    .values({k: sa.func.coalesce(sa.bindparam(f"_{k}"), posts.c[k]) for k in _ENGAGEMENT})
)


class PostRecords(Records):
    """Collected posts: stored once each, however many sources brought them."""

    @guarded("store posts")
    def add_posts(self, source_key: str, items: Iterable[Post], state: SourceState | None = None) -> int:
        """Store posts seen through a source (and its state, in the same transaction); return how many were new."""
        return self.add_many([(source_key, list(items), state)])[0]

    @guarded("store posts")
    def add_many(
        self, batches: Sequence[tuple[str, Sequence[Post], SourceState | None]], *, owner: str = ""
    ) -> list[int]:
        """Store several sources' posts and states in one transaction; return each source's count of new posts.

        A post already stored (by id) gains the source and fresh engagement counts; a post new in this
        batch counts as new for the first source that brought it. Another process storing the same
        posts at the same moment is no error: each post counts as new only for the one that stored it.
        With ``owner``, the claims it holds on these sources (`claim_sources`) end in the same transaction.
        """
        return retried(lambda: self._add_many(batches, owner))

    def _add_many(self, batches: Sequence[tuple[str, Sequence[Post], SourceState | None]], owner: str) -> list[int]:
        now = clock.now()
        with self._writing() as conn:
            ids = {p.id for _, items, _ in batches for p in items}
            known = existing(conn, posts.c.id, ids)
            sourced = {(r.post_id, r.source) for r in select_in(conn, post_sources, post_sources.c.post_id, known)}
            fresh: dict[str, tuple[int, Post]] = {}  # id -> (the batch that brought it first, the post)
            seen: list[Post] = []
            pairs: set[tuple[str, str]] = set()
            for i, (key, items, _) in enumerate(batches):
                for post in {p.id: p for p in items}.values():
                    seen.append(post)
                    if (post.id, key) not in sourced:
                        pairs.add((post.id, key))
                    if post.id not in known:
                        fresh.setdefault(post.id, (i, post))
            # Rows go in key order, the same in every process, so two writers never deadlock.
            rows = [_post_row(post, now) for _, (_, post) in sorted(fresh.items())]
            inserted = insert_new(conn, posts, rows, posts.c.id)
            counts = [0] * len(batches)
            for post_id in inserted:
                counts[fresh[post_id][0]] += 1
            links = sorted({(pid, link) for pid in inserted for link in fresh[pid][1].links})
            insert_new(conn, post_links, [{"post_id": p, "url": u} for p, u in links])
            insert_new(conn, post_sources, [{"post_id": p, "source": k} for p, k in sorted(pairs)])
            # Fresh counts for posts stored before (by an earlier run, or by another process just now).
            updates = [
                {"_id": post.id, **{f"_{k}": v for k, v in asdict(post.engagement).items()}}
                for post in sorted(seen, key=lambda post: post.id)
                if post.id not in inserted
            ]
            if updates:
                conn.execute(_ENGAGEMENT_UPDATE, updates)
            save_states(conn, [state for _, _, state in batches if state is not None])
            if owner:
                conn.execute(
                    sources.update()
                    .where(sources.c.owner == owner, sources.c.key.in_(sorted({key for key, _, _ in batches})))
                    .values(owner="", lease_until=None)
                )
        return counts

    @guarded("read a post")
    def post(self, id_or_url: str) -> Post | None:
        """One post by id, URI or permalink."""
        query = sa.select(*POST_COLUMNS).where(
            sa.or_(posts.c.id == id_or_url, posts.c.uri == id_or_url, posts.c.url == id_or_url)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return _row_post(row) if row else None

    @guarded("read posts")
    def posts(self, since: datetime | None = None, until: datetime | None = None) -> list[Post]:
        """Posts published in ``[since, until)``, oldest first."""
        with self.engine.connect() as conn:
            authors: dict[tuple[str, str, str], Author] = {}  # one per account: a week repeats them
            return [_row_post(row, authors) for row in conn.execute(_window(sa.select(*POST_COLUMNS), since, until))]

    @guarded("read posts' documents")
    def documents(self, since: datetime | None = None, until: datetime | None = None) -> list[Document]:
        """``(id, Post.document())`` of the posts `posts` returns, in its order: what the topic filter reads,
        without building the posts (their HTML, links and authors stay in the store)."""
        columns = (posts.c.id, posts.c.title, posts.c.text, posts.c.tags, posts.c.media)
        query = _window(sa.select(*columns), since, until)
        with self.engine.connect() as conn:
            return [
                Document(
                    pid,
                    document_of(
                        strip_invisible(title) if title else title,
                        text,
                        from_json(tags),
                        [m.get("alt", "") for m in from_json(media)],
                    ),
                )
                for pid, title, text, tags, media in conn.execute(query)
            ]

    @guarded("count posts")
    def count_posts(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(posts)).scalar_one())

    @guarded("read a post's sources")
    def sources_of(self, post_id: str) -> list[str]:
        """Keys of every source a post was seen through."""
        query = (
            sa.select(post_sources.c.source).where(post_sources.c.post_id == post_id).order_by(post_sources.c.source)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    @guarded("read the posts sharing a link")
    def posts_linking(self, url: str) -> list[str]:
        """Ids of posts that share a (canonical) link."""
        query = sa.select(post_links.c.post_id).where(post_links.c.url == url).order_by(post_links.c.post_id)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())


def _window(query: sa.Select[Any], since: datetime | None, until: datetime | None) -> sa.Select[Any]:
    """``query`` over the posts published in ``[since, until)``, oldest first."""
    query = query.order_by(posts.c.published, posts.c.id)
    if since is not None:
        query = query.where(posts.c.published >= since)
    if until is not None:
        query = query.where(posts.c.published < until)
    return query


def _post_row(post: Post, collected_at: datetime) -> dict[str, Any]:
    return {
        "id": post.id,
        "uri": post.uri,
        "source": post.source,
        "url": post.url,
        "published": post.published,
        "author_name": post.author.name,
        "author_handle": post.author.handle,
        "author_url": post.author.url,
        "title": post.title,
        "text": post.text,
        "html": post.html,
        "language": post.language,
        "tags": list(post.tags),
        "mentions": list(post.mentions),
        "links": list(post.links),
        "media": [asdict(m) for m in post.media],
        "is_reply": post.is_reply,
        "in_reply_to": post.in_reply_to,
        "is_boost": post.is_boost,
        "is_quote": post.is_quote,
        "boosted_by": post.boosted_by,
        "content_warning": post.content_warning,
        "sensitive": post.sensitive,
        **asdict(post.engagement),
        "collected_at": collected_at,
    }


def _row_post(row: Any, authors: dict[tuple[str, str, str], Author] | None = None) -> Post:
    """A `Post` from a row of `POST_COLUMNS`, by position (a week is read in one pass of 100,000 rows);
    ``authors`` shares one `Author` between the posts of an account."""
    values = tuple(row)
    simple = dict(zip(_SIMPLE, values[: len(_SIMPLE)], strict=True))
    name, handle, url, tags, mentions, links, media, *counts = values[len(_SIMPLE) :]
    author = None if authors is None else authors.get((name, handle, url))
    if author is None:
        author = Author(name, handle, url)
        if authors is not None:
            authors[name, handle, url] = author
    return Post(
        **simple,
        author=author,
        tags=tuple(from_json(tags)),
        mentions=tuple(from_json(mentions)),
        links=tuple(from_json(links)),
        media=tuple(Media(**item) for item in from_json(media)),
        engagement=Engagement(*counts),
    )
