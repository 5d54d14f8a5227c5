"""The `subscribers` commands: list, add, remove, import and export."""

from __future__ import annotations

import json

import click

from .. import clock
from ..errors import UsageError
from ..wording import plural
from ._app import State, cli
from ._output import counts_line, err, json_flag, new_table, out, print_json


@cli.group()
def subscribers() -> None:
    """Manage subscribers: list, add, remove, import and export.

    Readers usually subscribe themselves on the pages of `digest serve`. An
    address that unsubscribed is kept only as a hash (the suppression list):
    `add` and `import` refuse it, so nobody is added back silently.
    """


@subscribers.command(name="list")
@click.option("--json", "as_json", is_flag=True, help='Print [{"email", "state", "topics"}] as JSON.')
@click.option(
    "--state", "only", type=click.Choice(["pending", "confirmed", "unsubscribed", "bouncing"]), help="Only this state."
)
@click.pass_obj
def subscribers_list(state: State, as_json: bool, only: str | None) -> None:
    """List subscribers with their state and topics.

    Addresses listed in feeds.toml are included. People who unsubscribed
    through the pages are kept only as hashes: they are counted, not listed.

    \b
    Examples:
      digest subscribers list
      digest subscribers list --state pending
      digest subscribers list --json
    """
    from ..store import Store
    from ..subscribers import listing

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        rows = [r for r in listing(settings, store, now=clock.now()) if not only or r["state"] == only]
        counts = store.subscriber_counts()
    if as_json:
        out.print_json(json.dumps([{"email": r["email"], "state": r["state"], "topics": r["topics"]} for r in rows]))
        return
    table = new_table(title=f"{len(rows)} subscribers")
    for column in ("email", "state", "topics", "from"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r["email"], r["state"], ", ".join(r["topics"]), r["origin"])
    out.print(table)
    out.print(counts_line(counts), markup=False)


@subscribers.command(name="add")
@click.argument("email")
@click.option("--topics", "topic_list", help="Topics, comma-separated (default: all).")
@click.option("--confirmed", is_flag=True, help="They asked you directly: no confirmation email.")
@json_flag('{"email", "state", "topics", "confirmation_sent"}')
@click.pass_obj
def subscribers_add(state: State, email: str, topic_list: str | None, confirmed: bool, as_json: bool) -> None:
    """Add a subscriber (or change an existing one's topics).

    With [subscription] double_opt_in (the default) and no --confirmed, the
    address is pending and gets a confirmation email. An address that
    unsubscribed is refused: only they can subscribe again, on the pages.

    \b
    Examples:
      digest subscribers add reader@example.org
      digest subscribers add reader@example.org --topics "FHIR,Privacy" --confirmed
    """
    from ..store import Store
    from ..subscribers import add

    settings = state.settings()
    address = _address(email)
    topics = [t.strip() for t in topic_list.split(",") if t.strip()] if topic_list is not None else None
    with Store.open(settings.database_url) as store:
        added = add(settings, store, address, topics, confirmed=confirmed, now=clock.now())
    if as_json:
        topics = list(added.topics or [t.name for t in settings.topics])
        pending = added.status == "pending"
        print_json({"email": added.email, "state": added.status, "topics": topics, "confirmation_sent": pending})
        return
    note = "; a confirmation email was sent" if added.status == "pending" else ""
    out.print(f"{added.email}: {added.status}{note}", markup=False)


@subscribers.command(name="remove")
@click.argument("email")
@click.option("--suppress", is_flag=True, help="Block an address that never subscribed from imports and adds.")
@json_flag('{"email", "result"}')
@click.pass_obj
def subscribers_remove(state: State, email: str, suppress: bool, as_json: bool) -> None:
    """Unsubscribe an address: its data goes, a suppression (its hash) stays.

    An address that never subscribed is left alone (and said so), unless
    --suppress asks for it to be blocked, as when someone asks never to be added.

    \b
    Examples:
      digest subscribers remove reader@example.org
      digest subscribers remove someone@example.org --suppress
    """
    from ..store import Store
    from ..subscribers import Removal, remove

    settings = state.settings()
    address = _address(email)
    with Store.open(settings.database_url) as store:
        done = remove(settings, store, address, now=clock.now(), suppress=suppress)
    if as_json:
        print_json({"email": address, "result": done.name.lower()})
        return
    said = {
        Removal.UNSUBSCRIBED: "unsubscribed; its suppression stays, so no import adds it back",
        Removal.NOT_SUBSCRIBED: "was not subscribed; nothing changed (--suppress blocks it from imports and adds)",
        Removal.ALREADY_UNSUBSCRIBED: "had already unsubscribed; nothing changed",
        Removal.SUPPRESSED: "was not subscribed; suppressed, so no import or add takes it",
    }[done]
    out.print(f"{address}: {said}", markup=False)


def _address(raw: str) -> str:
    """An address from the command line, normalized; a malformed one is bad usage (exit 2) naming it."""
    from ..subscribers import InvalidInput, normalize_email

    try:
        return normalize_email(raw)
    except InvalidInput as exc:
        raise UsageError(f"{raw!r}: {exc}") from None


@subscribers.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def subscribers_import(state: State, file: str, as_json: bool) -> None:
    """Add the people in FILE.csv as confirmed subscribers.

    Columns: email, and optionally topics (several joined by |) and name. Only
    import people who asked to receive the digest. Suppressed addresses are
    skipped, existing subscribers are left as they are, and a bad row is
    reported with its line while the rest go on.

    \b
    Examples:
      digest subscribers import readers.csv
      digest subscribers import readers.csv --json
    """
    from ..store import Store
    from ..subscribers import import_csv

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        report = import_csv(settings, store, file, now=clock.now())
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
        return
    for line, reason in report.invalid:
        err.print(f"{file}:{line}: {reason}", markup=False)
    out.print(
        f"added {len(report.added)}, already subscribed {len(report.existing)}, "
        f"skipped as unsubscribed {len(report.suppressed)}, invalid {len(report.invalid)}",
        markup=False,
    )


@subscribers.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@json_flag('{"file", "subscribers"}')
@click.pass_obj
def subscribers_export(state: State, file: str, as_json: bool) -> None:
    """Write every subscriber to FILE.csv (email, name, topics, state, and the
    reader's own feedback signals), readable by `import`.

    \b
    Example:
      digest subscribers export readers.csv
    """
    from ..store import Store
    from ..subscribers import export_csv

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        rows = export_csv(settings, store, file, now=clock.now())
    if as_json:
        print_json({"file": str(file), "subscribers": rows})
        return
    err.print(f"wrote {plural(rows, 'subscriber')} to {file}", markup=False)
