"""Managing sources: add one (finding a website's feeds), import and export OPML, and say how each fares.

Adding checks a source by fetching it once with the collector's own code (a feed through the
`Fetcher` and `parse_feed`, an account or hashtag through its job), refuses duplicates, and
writes the new ``[[sources]]`` table into feeds.toml right after the last one, leaving every
other byte of the file as it was. The result is validated before and after it is written; a
file that would not load is never left behind.

`source_status` reads the store (never writes it) to say, per endpoint, how the last fetch
went, how many posts came this week, how many of them the topic filter dropped, and whether
the source looks dead or mostly noise.

One module per job: `_input` (what a person typed, as a `NewSource`), `_discovery` (a site's feeds),
`_check` (the one-off fetch), `_add` (adding one source), `_opml_io` (OPML in and out), `_editor`
(writing feeds.toml) and `_status` (how each source fares).
"""

from __future__ import annotations

from ..errors import ChoiceNeeded
from ._add import AddReport, add_source
from ._check import Checked
from ._discovery import COMMON_PATHS, Candidate, feed_links
from ._editor import append_sources, insert_sources
from ._input import NewSource, from_feed_url, parse_source, source_identities
from ._opml_io import ExportReport, ImportReport, export_opml, import_opml
from ._status import SourceStatus, source_status, status_of

__all__ = [
    "COMMON_PATHS",
    "AddReport",
    "Candidate",
    "Checked",
    "ChoiceNeeded",
    "ExportReport",
    "ImportReport",
    "NewSource",
    "SourceStatus",
    "add_source",
    "append_sources",
    "export_opml",
    "feed_links",
    "from_feed_url",
    "import_opml",
    "insert_sources",
    "parse_source",
    "source_identities",
    "source_status",
    "status_of",
]
