"""`digest eval`: the topic filter measured on labelled posts, one batch or a sweep of many."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, DigestError
from ._app import State, cli
from ._output import bar, busy, new_table, out

if TYPE_CHECKING:
    from ..topics import TopicSpec


@cli.command(name="eval")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--sweep", "run_sweep", is_flag=True, help="Sample many batches: on-topic shares and batch sizes.")
@click.option(
    "--feedback",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="FEEDBACK.csv (text,label): run as if readers' signals on these posts were accepted as examples.",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, 100),
    default=None,
    help="With --sweep: batches sampled per cell (default 5).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def eval_cmd(state: State, data: str, run_sweep: bool, feedback: str | None, seeds: int | None, as_json: bool) -> None:
    """Measure the topic filter on labelled posts: DATA.csv with columns text,label.

    `label` is a topic name (several joined by |) or empty for off-topic. The
    filter runs exactly as the weekly job would, the whole file as one batch,
    with the topics of the configuration; plain keyword matching (a post kept
    under every topic whose keywords it contains) is scored beside it.

    With --sweep, the filter runs on many batches sampled from the file
    instead: at on-topic shares from 5% to 95% (900 posts, fewer when the file
    is short of either kind) and at sizes from 30 to 1,000 posts (40% on-topic),
    each with --seeds random samples. A table per sweep gives the mean and the
    lowest seed's F1 (macro over topics), precision, recall, off-topic chatter
    dropped and on-topic posts kept under a wrong topic, the keyword baseline,
    then the cells that miss the quality targets.

    With --feedback, the rows of FEEDBACK.csv (text,label) join the fit as
    accepted readers' examples: a labelled row "more like this" under its
    topics, an off-topic row "not for me" under every topic.

    \b
    Examples:
      digest --config topics.toml eval labelled.csv
      digest --config topics.toml eval held-out.csv --feedback pressed.csv
      digest --config topics.toml eval labelled.csv --json
      digest --config topics.toml eval labelled.csv --sweep
      digest --config topics.toml eval labelled.csv --sweep --seeds 2 --json
    """
    from ..evaluate import check, evaluate, feedback_examples, read_labelled, sweep
    from ..pipeline import noise_profile
    from ..topics import with_examples

    if seeds is not None and not run_sweep:
        raise click.UsageError("--seeds goes with --sweep")
    settings = state.settings()
    if not settings.topics:
        raise ConfigError(f"{settings.path}: no [[topics]] configured; eval measures them")
    texts, labels = read_labelled(data)
    noise = noise_profile(settings)
    topics: Sequence[TopicSpec] = settings.topics
    if feedback is not None:
        names = [t.name for t in settings.topics]
        topics, noise = with_examples(topics, noise, feedback_examples(*read_labelled(feedback), names))
    if run_sweep:
        with bar("sweeping", as_json) as progress:
            try:
                report = sweep(texts, labels, topics, noise=noise, seeds=seeds or 5, on_progress=progress)
            except ValueError as exc:
                raise DigestError(f"{data}: {exc}") from None
        if as_json:
            out.print_json(json.dumps(report))
        else:
            with _wide():
                _print_sweep(data, report, check(report))
        return
    with busy(f"filtering {len(texts)} posts", as_json):
        report = evaluate(texts, labels, topics, noise=noise)
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = new_table(title=f"digest eval {data}")
    for column in ("topic", "precision", "recall", "F1", "support", "keyword F1"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    baseline = report["keyword_baseline"]
    for name, row in report["topics"].items():
        values = (row["precision"], row["recall"], row["f1"])
        table.add_row(name, *(f"{v:.3f}" for v in values), str(row["support"]), f"{baseline['topics'][name]['f1']:.3f}")
    out.print(table)
    off = report["off_topic"]
    out.print(
        f"macro-F1 {report['macro_f1']:.3f}; off-topic rows dropped: {off['dropped']:.1%} of {off['rows']}; "
        f"on-topic rows kept under a wrong topic: {report['wrong_topic']:.1%}; {report['posts_per_second']:,.0f} posts/s"
    )
    out.print(
        f"keyword baseline (kept on any keyword): macro-F1 {baseline['macro_f1']:.3f}; off-topic rows dropped: "
        f"{baseline['off_topic']['dropped']:.1%}; kept under a wrong topic: {baseline['wrong_topic']:.1%}"
    )


_SWEEP_STATS = ("f1", "precision", "recall", "chatter_dropped")  # mean and lowest seed, then wrong_topic


@contextmanager
def _wide(columns: int = 132) -> Iterator[None]:
    """Wide tables: on a terminal its width, else (a file, a pipe) ``columns`` rather than rich's 80."""
    width = out.width
    if not out.is_terminal:
        out.width = max(width, columns)
    try:
        yield
    finally:
        out.width = width


def _print_sweep(data: str, report: dict[str, Any], misses: list[str]) -> None:
    """`digest eval --sweep`: a table per sweep (shares, sizes), per-topic F1 with several topics, the misses."""
    several = len(report["topics"]) > 1
    f1 = "macro-F1" if several else "F1"
    titles = {
        "shares": f"on-topic share, batches of {report['share_size']} (fewer when the data is short)",
        "sizes": f"batch size, {report['size_share']:.0%} on-topic",
    }
    for kind in ("shares", "sizes"):
        table = new_table(
            title=f"digest eval --sweep {data}: {titles[kind]}; {report['seeds']} seed(s) each",
        )
        headers: tuple[str, ...] = (
            "share",
            "n",
            f"{f1}\nmean",
            "\nmin",
            "precision\nmean",
            "\nmin",
            "recall\nmean",
            "\nmin",
        )
        headers += ("chatter\ndropped", "\nmin", "wrong\ntopic", "\nmax", f"keyword\n{f1}", "keyword\nchatter")
        for column in headers:
            table.add_column(column, justify="right")
        for cell in report[kind]:
            n = str(cell["n"]) if cell["n"] == cell["requested_n"] else f"{cell['n']}/{cell['requested_n']}"
            stats = [cell[k][which] for k in _SWEEP_STATS for which in ("mean", "min")]
            stats += [cell["wrong_topic"]["mean"], cell["wrong_topic"]["max"], *cell["keyword_baseline"].values()]
            table.add_row(f"{cell['share']:g}", n, *(f"{v:.3f}" for v in stats))
        out.print(table)
        if several:
            per_topic = new_table(title=f"mean F1 per topic ({kind})")
            per_topic.add_column("share", justify="right")
            per_topic.add_column("n", justify="right")
            for name in report["topics"]:
                per_topic.add_column(name, justify="right")
            for cell in report[kind]:
                row = [f"{cell['share']:g}", str(cell["n"]), *(f"{v:.3f}" for v in cell["topics"].values())]
                per_topic.add_row(*row)
            out.print(per_topic)
    worst = report["worst"]
    out.print(
        f"worst: mean {f1} {worst['f1']['value']:.3f} at {worst['f1']['cell']}; lowest chatter dropped "
        f"{worst['chatter_dropped']['value']:.3f} at {worst['chatter_dropped']['cell']}; lowest recall "
        f"{worst['recall']['value']:.3f} at {worst['recall']['cell']}",
        markup=False,
    )
    if not misses:
        out.print("every quality target met.")
        return
    out.print(f"{len(misses)} quality targets missed:")
    for miss in misses:
        out.print(f"  {miss}", markup=False)
