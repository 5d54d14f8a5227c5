"""The weekly job's commands: `collect`, `send` and `run` (collect, filter, compose, send), with their bars."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from .. import clock
from ..wording import plural
from ._app import EXIT_FAILED, State, cli
from ._output import bar, collect_bar, err, new_table, out

if TYPE_CHECKING:
    from ..collect import SourceResult
    from ..config import Settings
    from ..delivery import SendReport

DRY_RUN_SHOWN = 10  # addresses a dry run prints per edition (its --json lists them all)


@cli.command(name="collect")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table; errors still go to stderr.")
@click.pass_obj
def collect_cmd(state: State, as_json: bool, quiet: bool) -> None:
    """Fetch every configured source once and store new posts.

    Sources are fetched concurrently; one failing source never stops the rest.
    Meant to run often (hourly from cron or a systemd timer): unchanged feeds
    answer 304 and cost almost nothing. Runs started together (cron beside
    `digest serve`, other machines on one database) share the sources: each
    fetches what it claims and reports the rest as held by other runs, and a
    source fetched less than [collect] refetch_after ago is not fetched again.
    Exits 0 when the run completed, even if some sources failed, and 1 only
    when every source that was tried failed.

    \b
    Examples:
      digest collect
      digest collect --json
      digest collect --quiet       # for cron
    """
    from ..collect import collect, jobs_for
    from ..store import Store

    settings = state.settings()
    jobs = jobs_for(settings)
    with Store.open(settings.database_url) as store, collect_bar(len(jobs), quiet or as_json) as advance:
        report = collect(settings, store, jobs=jobs, on_result=advance)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    elif not quiet:
        _print_collect_summary(report.as_dict())
    elif report.count("failed"):
        for e in report.as_dict()["errors"]:
            err.print(f"{e['source']}: {e['error']}", markup=False)
    if report.all_failed:
        raise SystemExit(EXIT_FAILED)


def _print_collect_summary(summary: dict[str, Any]) -> None:
    from ..collect import held_line

    table = new_table(title="digest collect")
    held = bool(summary["held_elsewhere"])
    columns = ["kind", "sources", "fetched", "not modified", "failed", "skipped", "new posts"]
    keys = ["sources", "ok", "not_modified", "failed", "skipped", "new_posts"]
    if held:  # only when other runs share the sources
        columns.insert(-1, "other runs")
        keys.insert(-1, "held_elsewhere")
    for column in columns:
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, row in summary["kinds"].items():
        table.add_row(kind, *(str(row[k]) for k in keys))
    out.print(table)
    for error in summary["errors"]:
        out.print(f"[red]failed[/red]  {error['source']}: {error['error']}", markup=True, highlight=False)
    for item in summary["skipped_sources"]:
        out.print(f"skipped {item['source']}: {item['reason']}", markup=False)
    for item in summary["notes"]:
        out.print(f"note    {item['source']}: {item['note']}", markup=False)
    out.print(f"{plural(summary['new_posts'], 'new post')} from {plural(summary['sources'], 'source')}.")
    if held:
        out.print(held_line(len(summary["held_elsewhere"])), markup=False)


@cli.command()
@click.option("--week", help="An ISO week such as 2026-W47 (default: the last completed edition).")
@click.option("--dry-run", is_flag=True, help="Compose and list who would get which edition; send nothing.")
@click.option("--to", "only", metavar="EMAIL", help="Send only to this (confirmed) subscriber.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; only problems, on stderr.")
@click.pass_obj
def send(state: State, week: str | None, dry_run: bool, only: str | None, as_json: bool, quiet: bool) -> None:
    """Send the last completed edition to every confirmed subscriber, exactly once each.

    An edition covers the posts from the previous send time (send_on) to its own,
    so it is complete, and can be sent, from its send time on: before Friday's
    send time, `digest send` sends last Friday's edition (a re-run finds it sent).
    A --week still in progress or not begun is refused (exit 2).

    Safe to run again: whoever already has this edition is skipped, and
    after a crash a re-run sends only what was not handed over. With no [mail]
    smtp, messages are written to the outbox folder as .eml files.

    \b
    Examples:
      digest send --dry-run
      digest send
      digest send --week 2026-W47 --to reader@example.org
    """
    from ..pipeline import send_week
    from ..store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store, bar("sending", quiet or as_json) as progress:
        report = send_week(
            settings, store, now=clock.now(), week=week, only=only, dry_run=dry_run, on_progress=progress
        )
    print_send(report, settings, as_json, quiet)
    if report.stopped or (report.deferred and not report.sent):
        raise SystemExit(EXIT_FAILED)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print both summaries as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars; only problems, on stderr (for cron).")
@click.pass_obj
def run(state: State, as_json: bool, quiet: bool) -> None:
    """The weekly job: collect, filter, compose and send this week's edition.

    Each step is also a command of its own (collect, filter, preview, send).
    Run it from cron or a systemd timer at your send_on time; see the README.
    Exits 1 when sending stopped, or when every source that was tried failed
    (the edition is still sent from the posts collected before), so cron notices.

    \b
    Examples:
      digest run
      digest run --quiet      # for cron
    """
    from ..collect import held_line, jobs_for
    from ..pipeline import run_week
    from ..store import Store

    settings = state.settings()
    jobs = jobs_for(settings)
    with Store.open(settings.database_url) as store, _week_progress(len(jobs), quiet or as_json) as (advance, sending):
        week = run_week(settings, store, clock.now(), jobs=jobs, on_result=advance, on_progress=sending)
    collected, report = week.collected, week.sent
    if as_json:
        out.print_json(json.dumps({"collect": collected.as_dict(), "send": report.as_dict()}))
    else:
        if not quiet:
            out.print(f"collected: {collected.line()}", markup=False)
            if collected.count("held_elsewhere"):
                out.print(held_line(collected.count("held_elsewhere")), markup=False)
        for e in collected.as_dict()["errors"]:
            err.print(f"{e['source']}: {e['error']}", markup=False)
        print_send(report, settings, False, quiet)
        if collected.all_failed:
            err.print(f"error: every source that was tried failed ({plural(collected.count('failed'), 'source')})")
    if report.stopped or collected.all_failed:
        raise SystemExit(EXIT_FAILED)


@contextmanager
def _week_progress(
    total: int, quiet: bool
) -> Iterator[tuple[Callable[[SourceResult], None], Callable[[int, int], None]]]:
    """`digest run`'s bars on one display (rich allows one at a time): collecting, then sending."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    if quiet or not err.is_terminal:
        yield (lambda result: None), (lambda done, total: None)
        return
    columns = (
        TextColumn("{task.fields[step]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        collecting, sending = progress.add_task("", total=total, step="collecting"), list[TaskID]()

        def collected(result: SourceResult) -> None:
            progress.update(collecting, advance=1, description=result.key[:60])

        def sent(done: int, total: int) -> None:
            if not sending:
                progress.update(collecting, visible=False)
                sending.append(progress.add_task("", total=total, step="sending"))
            progress.update(sending[0], completed=done, total=total)

        yield collected, sent


def print_send(report: SendReport, settings: Settings, as_json: bool, quiet: bool) -> None:
    from ..periods import describe

    if as_json:
        out.print_json(json.dumps(report.as_dict()))
        return
    for email, reason in report.failed:
        err.print(f"failed   {email}: {reason}", markup=False)
    for email, reason in report.deferred:
        err.print(f"deferred {email}: {reason}", markup=False)
    for email, mid, resent in report.uncertain:
        what = "sent again with the same Message-ID" if resent else "not sent again ([mail] uncertain = skip)"
        err.print(f"uncertain {email}: a crashed run handed it over unconfirmed; {what} {mid}", markup=False)
    if report.stopped:
        err.print(report.stopped, markup=False)
    if quiet:
        return
    if report.held_elsewhere:
        out.print(f"{len(report.held_elsewhere)} being sent by another run right now", markup=False)
    if report.period is not None:
        p = report.period
        out.print(
            f"{report.week}: the edition of {describe(settings, p.since)} to {describe(settings, p.until)}; "
            f"the next is due {describe(settings, report.next_due or p.due)}",
            markup=False,
        )
    verb = "would send" if report.dry_run else "sent"
    count = sum(len(people) for people in report.planned.values()) if report.dry_run else len(report.sent)
    line = (
        f"{report.week}: {verb} {count}, skipped {len(report.already_sent)} already sent, "
        f"failed {len(report.failed)}, deferred {len(report.deferred)}; {plural(report.recipients, 'confirmed subscriber')}"
    )
    out.print(line, markup=False)
    for path, people in report.planned.items():
        shown = ", ".join(people[:DRY_RUN_SHOWN]) + (
            f" and {len(people) - DRY_RUN_SHOWN} more" if len(people) > DRY_RUN_SHOWN else ""
        )
        out.print(f"  {path} -> {plural(len(people), 'subscriber')}: {shown}", markup=False)
    if report.nothing_to_send:
        out.print(f"nothing this week for {len(report.nothing_to_send)} (their topics had no posts)", markup=False)
    if not report.recipients and not report.dry_run and not report.stopped:
        out.print(
            "no confirmed subscribers, so no edition was sent: `digest preview` shows this week's, and "
            "`digest subscribers add --confirmed EMAIL` adds a reader",
            markup=False,
        )
    if report.via == "outbox" and report.sent and not report.dry_run:
        out.print(f"no [mail] smtp configured: messages written to {settings.outbox_dir / report.week}", markup=False)
