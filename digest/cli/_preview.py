"""`digest preview` (an edition written to a file to look at) and `digest demo` (the first minute)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from .. import clock
from ..errors import DigestError
from ._app import State, cli

if TYPE_CHECKING:
    from ..config import Settings

from ._output import busy, err, json_flag, open_in_browser, out, print_json


@cli.command()
@click.option("--subscriber", "email", help="Preview the edition this subscriber gets (their topics).")
@click.option("--topics", "topic_list", help="Preview these topics, comma-separated (default: all).")
@click.option("--week", help="An ISO week such as 2026-W47 (default: the edition in progress, its posts so far).")
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write it (default: digest-preview-WEEK.html).")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in your web browser.")
@click.option("--text", "as_text", is_flag=True, help="The plain-text part instead of the HTML.")
@json_flag("what was written (file, week, period, counts; the edition goes to the file)")
@click.pass_obj
def preview(
    state: State,
    email: str | None,
    topic_list: str | None,
    week: str | None,
    out: str | None,
    open_browser: bool,
    as_text: bool,
    as_json: bool,
) -> None:
    """Compose an edition from the stored posts and write it to a file to look at.

    By default the edition in progress: the posts since the last send time, which
    the next send time completes. The filter runs first (as the weekly job would)
    and its decisions are recorded.

    \b
    Examples:
      digest preview --open
      digest preview --topics "Interoperability" --week 2026-W47 --open
      digest preview --subscriber reader@example.org --text
    """
    from ..compose import personalize
    from ..periods import describe, edition_for
    from ..pipeline import composer_for
    from ..store import Store
    from ..subscribers import preview_topics

    settings = state.settings()
    chosen = [t.strip() for t in topic_list.split(",") if t.strip()] if topic_list else []
    topics = preview_topics(settings, email, chosen)
    period = edition_for(settings, week, clock.now(), complete=False)
    with Store.open(settings.database_url) as store, busy("composing", False):
        composer = composer_for(settings, store, now=clock.now(), period=period)
    edition = composer.edition(topics)
    if edition is None:
        if not period.complete:  # the edition in progress, perhaps only just begun
            last = edition_for(settings, None, clock.now(), complete=True)
            raise DigestError(
                f"no posts match {', '.join(topics)} in {composer.week} yet (its period began "
                f"{describe(settings, period.since)}); `digest preview --week {last.week}` shows the last edition"
            )
        raise DigestError(
            f"no posts matched {', '.join(topics)} in {composer.week}: an empty week sends nothing "
            "(set [digest] quiet_week = true to send a one-line note instead)"
        )
    links = _preview_links(settings)
    edition = personalize(
        edition, unsubscribe_url=links + "unsubscribe", preferences_url=links + "preferences", name=""
    )
    body = edition.text if as_text else edition.html
    numbers = composer.counts(topics)
    counts = f"{edition.week}{'' if period.complete else ' so far'}: {numbers.summary}"
    if as_text and not out and not open_browser and not as_json:
        out_console = Console(highlight=False, soft_wrap=True, markup=False)
        out_console.print(body, markup=False)
        err.print(counts, markup=False)
        return
    path = Path(out or f"digest-preview-{edition.week}.{'txt' if as_text else 'html'}").resolve()
    path.write_text(body, encoding="utf-8")
    if as_json:
        print_json(
            {
                "file": str(path),
                "week": edition.week,
                "period": {"since": period.since.isoformat(), "until": period.until.isoformat()},
                "complete": period.complete,
                "topics": list(edition.topics),
                "subject": edition.subject,
                "counts": numbers.as_dict(),
            }
        )
    else:
        err.print(f"wrote {path}: {edition.subject}\n{counts}", markup=False)
    if open_browser:
        open_in_browser(path)


def _preview_links(settings: Settings) -> str:
    base = settings.subscription.public_url
    return f"{base.rstrip('/')}/preview/" if base else "#"


@cli.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False),
    help="Where to leave the files (default: a new temporary folder).",
)
@click.option("--no-open", is_flag=True, help="Do not open the edition in a browser (for terminals).")
@click.pass_obj
def demo(state: State, folder: str | None, no_open: bool) -> None:
    """A first minute with digest: no internet and no config needed.

    Serves a sample week (health-IT accounts, a #HITsm chat, a blog, and the lunch
    photos that come along) on 127.0.0.1, runs the real pipeline against it
    (collect over HTTP, filter, compose, send to the outbox) in a temporary folder,
    prints what was kept and dropped, and opens the edition in your browser.

    \b
    Examples:
      digest demo
      digest demo --no-open --dir ./demo
    """
    import tempfile

    from ..demo import run_demo

    where = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="digest-demo-"))
    result = run_demo(where, say=lambda line: out.print(line, markup=False))
    for topic, lines in result.kept.items():
        total = result.counts.on_topic.get(topic, len(lines))
        shown = f"; the edition shows the top {len(lines)}" if total > len(lines) else ""
        out.print(f"\nkept under {topic} ({total}{shown}):", markup=False)
        for line in lines:
            out.print(f"  + {line}", markup=False)
    if result.counts.in_chats:
        out.print(f"\nin the chat recap ({result.counts.in_chats}):", markup=False)
        for line in result.recap:
            out.print(f"  {line}", markup=False)
    out.print(f"\nleft out as off-topic ({len(result.dropped)}):", markup=False)
    for line in result.dropped:
        out.print(f"  - {line}", markup=False)
    out.print(f"\n4. the edition: {result.preview}\n   the email, as sent: {result.outbox}", markup=False)
    out.print(f"   try: digest --config {result.folder / 'feeds.toml'} topics show", markup=False)
    if not no_open:
        open_in_browser(result.preview)
