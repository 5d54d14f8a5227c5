"""The store seam: SQLAlchemy Core over SQLite by default (any SQLAlchemy URL works), with migrations.

`Store` (`_protocol`) is the seam callers type against; `SQLStore` (`_sqlstore`) implements it with
one private module per table group, each a `Records` mixin: `_sources` (endpoint state,
claims on sources), `_posts`, `_decisions` (filter runs), `_subscribers` (and suppressions),
`_editions`, `_deliveries` (claims on deliveries, `DeliveryLog`), `_jobs` (the serve schedule) and `_signals`
(readers' feedback);
`_schema` holds the tables and migrations, `_engine` the connection, and `leases` names who holds a claim.

A fresh database is created at the newest schema; an existing one is migrated step by step in a
transaction, so a file written by an older digest never loses data.

Safe to run twice: two processes may open, migrate and collect into one database at once
(cron beside `digest serve`). The schema is created and migrated under a lock (an advisory lock
on PostgreSQL, a write transaction taken before the version is read on SQLite), and posts, their
links and sources, and source states are written with INSERT ... ON CONFLICT, so a row another
process stored first is never an error and counts as new only for the process that stored it.
Which SQL each database gets is decided here, never by callers, and every database error leaves the
store as one `StoreError` with a one-line reason.
"""

from __future__ import annotations

from ..dburl import database_exists, display_url
from ._decisions import FilterRun
from ._deliveries import DeliveryLog
from ._engine import environment_failure
from ._protocol import (
    DecisionStore,
    DeliveryStore,
    EditionStore,
    JobStore,
    PostStore,
    SignalStore,
    SourceStore,
    Store,
    SubscriberStore,
)
from ._schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    deliveries,
    editions,
    filter_runs,
    jobs,
    metadata,
    post_links,
    post_sources,
    posts,
    schema_info,
    sources,
    subscribers,
    suppression_hash,
    suppressions,
)
from ._sources import SourceClaims
from ._sqlstore import SQLStore

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DecisionStore",
    "DeliveryLog",
    "DeliveryStore",
    "EditionStore",
    "FilterRun",
    "JobStore",
    "PostStore",
    "SQLStore",
    "SignalStore",
    "SourceClaims",
    "SourceStore",
    "Store",
    "SubscriberStore",
    "database_exists",
    "deliveries",
    "display_url",
    "editions",
    "environment_failure",
    "filter_runs",
    "jobs",
    "metadata",
    "post_links",
    "post_sources",
    "posts",
    "schema_info",
    "sources",
    "subscribers",
    "suppression_hash",
    "suppressions",
]
