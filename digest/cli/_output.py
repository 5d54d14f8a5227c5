"""What the commands share for output: the two consoles, ``--json``, progress bars and spinners,
and the small words ("3h ago") their lines use; counts in words are `digest.wording`."""

from __future__ import annotations

import json
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

if TYPE_CHECKING:
    from rich.table import Table

    from ..collect import SourceResult

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def json_flag(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--json`` flag of a command: ``what`` it prints instead of its lines."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value))


@contextmanager
def busy(message: str, quiet: bool) -> Iterator[None]:
    """A spinner on a terminal while one long step runs; nothing otherwise."""
    if quiet or not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


@contextmanager
def collect_bar(total: int, quiet: bool) -> Iterator[Callable[[SourceResult], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet or not err.is_terminal:
        yield lambda result: None
        return
    columns = (
        TextColumn("collecting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("", total=total)

        def advance(result: SourceResult) -> None:
            progress.update(task, advance=1, description=result.key[:60])

        yield advance


@contextmanager
def bar(label: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet or not err.is_terminal:
        yield lambda done, total: None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


def open_in_browser(path: Path) -> None:
    """Open a file in the web browser, or say that none was found (a server, a container, ssh)."""
    if not webbrowser.open(path.as_uri()):
        err.print(f"no web browser found to open it; open {path} yourself", markup=False)


def counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in ("confirmed", "pending", "unsubscribed", "bouncing"))


def ago(when: datetime | None, now: datetime) -> str:
    """``5m ago``, ``3h ago``, ``2d ago``, or '' for never."""
    if when is None:
        return ""
    seconds = max(0, int((now - when).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


def new_table(title: str, **options: Any) -> Table:
    """A rich table titled on the left (rich.table is imported here, by the commands that print one)."""
    from rich.table import Table

    return Table(title=title, title_justify="left", **options)
