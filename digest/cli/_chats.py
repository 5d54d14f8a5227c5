"""The `chats` commands: when the configured hashtag chats run, and what their recap shows."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from .. import clock
from ..errors import DigestError
from ._app import State, cli

if TYPE_CHECKING:
    from ..models import Post

from ._output import err, json_flag, new_table, out, print_json


@cli.group()
def chats() -> None:
    """Weekly hashtag chats ([[chats]]): when they run, and what their recap shows."""


@chats.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the chats as JSON.")
@click.pass_obj
def chats_list(state: State, as_json: bool) -> None:
    """List the configured chats with their next window (or the one running now).

    From 5 minutes before a chat until 30 minutes after it, `digest serve`
    collects the chat's hashtag every 5 minutes; with cron, add the line the
    README gives for your chat's time.

    \b
    Examples:
      digest chats list
      digest chats list --json
    """
    from zoneinfo import ZoneInfo

    from ..chats import current_or_next_window

    settings = state.settings()
    zone = ZoneInfo(settings.digest.timezone)
    now = clock.now()
    rows: list[dict[str, Any]] = []
    for chat in settings.chats:
        start, end = current_or_next_window(chat, now, zone)
        rows.append(
            {
                "hashtag": chat.hashtag,
                "host": chat.host,
                "when": chat.when,
                "duration": chat.duration,
                "running": start <= now,
                "start": start.astimezone(zone).isoformat(),
                "end": end.astimezone(zone).isoformat(),
            }
        )
    if as_json:
        out.print_json(json.dumps({"timezone": settings.digest.timezone, "chats": rows}))
        return
    if not rows:
        out.print(f"{settings.path}: no [[chats]] configured", markup=False)
        return
    table = new_table(title=f"chats (times in {settings.digest.timezone})")
    for column in ("hashtag", "host", "every", "next window"):
        table.add_column(column)
    for row in rows:
        start, end = datetime.fromisoformat(row["start"]), datetime.fromisoformat(row["end"])
        window = f"{start:%a %Y-%m-%d %H:%M}-{end:%H:%M}" + (" (running now)" if row["running"] else "")
        table.add_row(f"#{row['hashtag']}", row["host"] or "-", f"{row['when']} for {row['duration']}", window)
    out.print(table)


@chats.command(name="recap")
@click.option(
    "--week", help="An ISO week such as 2026-W47: the last chat of that edition (default: the one in progress)."
)
@json_flag("the recap")
@click.pass_obj
def chats_recap(state: State, week: str | None, as_json: bool) -> None:
    """Print the recap of the last chat as the edition's text part shows it.

    For a curator to check what the edition will say: the questions in order,
    the best answers under each, and the other highlights. Nothing is recorded.

    \b
    Examples:
      digest chats recap
      digest chats recap --week 2026-W47
    """
    from ..compose import chat_text
    from ..periods import edition_for
    from ..pipeline import last_chat_recap
    from ..store import Store

    settings = state.settings()
    if not settings.chats:
        raise DigestError(f"{settings.path}: no [[chats]] configured")
    with Store.open(settings.database_url) as store:
        made = last_chat_recap(
            settings,
            store,
            now=clock.now(),
            period=edition_for(settings, week, clock.now(), complete=False) if week else None,
        )
    if made is None:
        raise DigestError("no configured chat ended in this edition's period")
    if made.empty:
        raise DigestError(
            f"#{made.hashtag}, {made.start:%Y-%m-%d %H:%M} UTC: nothing was collected during the chat "
            "(is its hashtag collected often enough? see `digest chats list`)"
        )
    if as_json:
        print_json(_recap_dict(made))
        return
    how = {
        "host": "the host's numbered questions",
        "labels": "numbered questions posted by anyone (none by the host)",
        "slices": "slices of the hour (nobody numbered questions)",
    }[made.mode]
    out.print(chat_text([made], settings.digest.timezone, settings.templates_dir).strip("\n"), markup=False)
    err.print(f"\n{made.posts} chat posts; questions from {how}.", markup=False)


def _recap_dict(recap: Any) -> dict[str, Any]:
    """``chats recap --json``: the questions in order, each with its best answers, then the other highlights."""

    def post(p: Post) -> dict[str, str]:
        return {"author": p.author.name or p.author.handle, "handle": p.author.handle, "url": p.url, "text": p.text}

    return {
        "hashtag": recap.hashtag,
        "start": recap.start.isoformat(),
        "end": recap.end.isoformat(),
        "participants": recap.participants,
        "posts": recap.posts,
        "mode": recap.mode,
        "thread_url": recap.thread_url,
        "questions": [
            {"label": q.label, "text": q.text, "url": q.link, "answers": [post(a) for a in q.answers]}
            for q in recap.questions
        ],
        "other": [post(p) for p in recap.other],
    }
