"""The `sources` commands: add, import and export OPML, list, and how each source fares."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

import click
from rich.markup import escape

from .. import clock
from ..wording import plural
from ._app import State, cli
from ._output import ago, err, json_flag, new_table, out, print_json


@cli.group()
def sources() -> None:
    """Manage what digest follows: add sources, import and export OPML, see how each fares.

    Changes are written into feeds.toml after its last [[sources]] table; every other
    line of the file (comments, order, spacing) stays exactly as it was.
    """


@sources.command(name="add")
@click.argument("source")
@click.option("--name", help="A display name (default: the feed's own title).")
@click.option(
    "--server",
    "servers",
    multiple=True,
    help="For a #hashtag: a Mastodon server to look it up on (repeat it; default [collect] servers).",
)
@click.option("--pick", type=click.IntRange(min=1), help="A website offering several feeds: add the Nth.")
@click.option("--all", "pick_all", is_flag=True, help="A website offering several feeds: add them all.")
@click.option("--no-check", is_flag=True, help="Write it without fetching it first (a website URL is taken as a feed).")
@json_flag("what was added and skipped (no prompt: --pick or --all)")
@click.pass_obj
def sources_add(
    state: State,
    source: str,
    name: str | None,
    servers: tuple[str, ...],
    pick: int | None,
    pick_all: bool,
    no_check: bool,
    as_json: bool,
) -> None:
    """Add SOURCE to feeds.toml after fetching it once to check it.

    SOURCE is a feed URL; a website (its feeds are found from <link rel="alternate"> or
    common paths such as /feed; with several, you pick one on a terminal, or pass
    --pick N or --all); a Mastodon account @user@server; a Bluesky handle
    (name.bsky.social, or @custom.domain); or a #hashtag (looked up on [collect]
    servers unless --server is given). A source already followed, or one that does
    not answer with a feed, is refused with the reason.

    \b
    Examples:
      digest sources add https://blog.hl7.org/rss.xml
      digest sources add https://www.healthcareittoday.com --pick 1
      digest sources add @someone@mastodon.social --name "Someone"
      digest sources add someone.bsky.social
      digest sources add '#FHIR' --server mastodon.social --server hachyderm.io
    """
    from ..sources import ChoiceNeeded, add_source

    settings = state.settings()
    interactive = sys.stdin is not None and sys.stdin.isatty() and err.is_terminal and not as_json
    choose = _choose_feeds if interactive else None
    try:
        report = add_source(
            settings,
            source,
            now=clock.now(),
            name=name,
            servers=servers or None,
            check=not no_check,
            pick=pick,
            pick_all=pick_all,
            choose=choose,
        )
    except ChoiceNeeded as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        print_json(
            {
                "path": str(report.path),
                "page": report.page or None,
                "checked": report.checked,
                "added": [{"source": c.source.describe(), "title": c.title, "posts": c.posts} for c in report.added],
                "skipped": [{"source": where, "reason": reason} for where, reason in report.skipped],
            }
        )
        return
    for where, reason in report.skipped:
        err.print(f"skipped {where}: {reason}", markup=False)
    found = f" (found on {report.page})" if report.page else ""
    for checked in report.added:
        detail = f"{checked.posts} posts now" if report.checked else "not checked"
        out.print(f"added {checked.source.describe()}{found}: {detail}; written to {report.path}", markup=False)


def _choose_feeds(page: str, candidates: list[Any]) -> list[int]:
    """Ask on the terminal which of a page's feeds to add: a number, several (1,3) or 'all'."""
    err.print(f"{page} offers {len(candidates)} feeds:", markup=False)
    for i, candidate in enumerate(candidates, start=1):
        err.print(f"  {i}. {candidate.describe()}", markup=False)

    def parse(answer: str) -> list[int]:
        if answer.strip().lower() == "all":
            return list(range(len(candidates)))
        try:
            picked = [int(part) - 1 for part in answer.replace(" ", "").split(",") if part]
        except ValueError:
            raise click.UsageError("answer with numbers such as 1 or 1,3, or 'all'") from None
        if not picked or any(not 0 <= i < len(candidates) for i in picked):
            raise click.UsageError(f"choose between 1 and {len(candidates)}")
        return picked

    return click.prompt("Add which (1,3 or all)", default="1", value_proc=parse, err=True)


@sources.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Fetch each feed once first and skip the dead ones, saying why.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def sources_import(state: State, file: str, check: bool, as_json: bool) -> None:
    """Add every feed of FILE.opml (an export of Feedly, Inoreader, NetNewsWire,
    Miniflux, FreshRSS or any reader) to feeds.toml, in one write.

    Feeds already followed and feeds listed twice are skipped, so importing the same
    file again adds nothing. Feeds are written without being fetched unless --check
    is given. Mastodon and Bluesky RSS URLs become those accounts (and hashtags),
    read through their APIs. A file that is not well-formed is refused with its line,
    and nothing is written.

    \b
    Examples:
      digest sources import feedly.opml
      digest sources import subscriptions.xml --check
    """
    from ..sources import import_opml

    settings = state.settings()
    report = import_opml(settings, file, now=clock.now(), check=check)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
        return
    for source, why, reason in report.skipped:
        if why != "followed":
            err.print(f"skipped {source}: {reason}", markup=False)
    words = {"followed": "already followed", "twice": "listed twice", "dead": "dead", "invalid": "invalid"}
    why = ", ".join(f"{n} {words[w]}" for w, n in report.counts().items())
    out.print(f"added {len(report.added)}, skipped {len(report.skipped)}{f' ({why})' if why else ''}", markup=False)


@sources.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@json_flag('{"file", "feeds", "left_out"}')
@click.pass_obj
def sources_export(state: State, file: str, as_json: bool) -> None:
    """Write the sources to FILE.opml (OPML 2.0), for a feed reader or `digest sources import`.

    Feeds are written as they are; Mastodon accounts, hashtags (one feed per server) and
    Bluesky accounts as their public RSS URLs; each kind in its own folder.

    \b
    Example:
      digest sources export sources.opml
    """
    from ..sources import export_opml

    settings = state.settings()
    report = export_opml(settings, file, now=clock.now())
    if as_json:
        print_json({"file": str(file), "feeds": report.feeds, "left_out": report.left_out})
        return
    for item in report.left_out:
        err.print(f"left out {item}", markup=False)
    err.print(f"wrote {report.feeds} feeds to {file}", markup=False)


@sources.command(name="list")
@click.option("--json", "as_json", is_flag=True, help='Print [{"kind", "key", "name", "status"}] as JSON.')
@click.pass_obj
def sources_list(state: State, as_json: bool) -> None:
    """List every endpoint digest fetches (a hashtag has one per server): kind, key,
    name and the last fetch's status.

    \b
    Examples:
      digest sources list
      digest sources list --json
    """
    from ..sources import status_of

    rows = status_of(state.settings(), now=clock.now())
    if as_json:
        out.print_json(json.dumps([{k: r.as_dict()[k] for k in ("kind", "key", "name", "status")} for r in rows]))
        return
    table = new_table(title=plural(len(rows), "source"))
    for column in ("kind", "key", "name", "status"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.kind, r.key, r.name, r.status.replace("_", " "))
    out.print(table)


@sources.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print every source's record as JSON.")
@click.pass_obj
def sources_status(state: State, as_json: bool) -> None:
    """Show how each source fares, to see which are worth following.

    Per endpoint: the last fetch and when, consecutive failures, the last success,
    posts collected this week, the share the topic filter dropped in its last run,
    and a hint when a source is dead (gone, resting after failures, or silent for
    30 days) or mostly noise (the filter dropped 60% or more of at least 5 posts).

    \b
    Examples:
      digest sources status
      digest sources status --json | jq '.[] | select(.hint_kind == "noise")'
    """
    from ..sources import status_of

    now = clock.now()
    rows = status_of(state.settings(), now=now)
    if as_json:
        out.print_json(json.dumps([r.as_dict() for r in rows]))
        return
    table = new_table(title=plural(len(rows), "source"))
    for column in ("kind", "source", "last fetch", "fails", "last success", "week", "dropped", "hint"):
        table.add_column(column, overflow="fold", justify="right" if column in ("fails", "week", "dropped") else "left")
    colours = {"dead": "red", "failing": "yellow", "noise": "magenta", "quiet": "dim"}
    for r in rows:
        dropped = f"{r.dropped_share:.0%} of {r.filtered}" if r.dropped_share is not None else "-"
        table.add_row(
            r.kind,
            escape(r.name or r.key.split(":", 1)[1]),
            f"{r.status.replace('_', ' ')} {ago(r.last_attempt, now)}".strip(),
            str(r.failures),
            ago(r.last_success, now) or "never",
            str(r.posts_week),
            dropped,
            f"[{colours[r.hint_kind]}]{r.hint_kind}[/]" if r.hint_kind else "",
        )
    out.print(table)
    for r in rows:
        if r.hint_kind:
            out.print(f"[{colours[r.hint_kind]}]{r.hint_kind:<7}[/] {escape(r.key)}: {escape(r.hint)}")
    for r in rows:
        if r.note:
            out.print(f"note    {r.key}: {r.note}", markup=False)
    kinds = Counter(r.hint_kind for r in rows if r.hint_kind)
    if kinds:
        out.print(", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())), markup=False)
