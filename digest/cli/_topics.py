"""`digest filter` and the `topics` commands: what the filter kept and dropped, why, and readers' signals."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import click

from .. import clock
from ..errors import DigestError
from ._app import State, cli
from ._output import busy, err, new_table, out, print_json

if TYPE_CHECKING:
    from ..models import Decision, Post
    from ..store import FilterRun


@cli.command(name="filter")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No spinner and no table.")
@click.pass_obj
def filter_cmd(state: State, as_json: bool, quiet: bool) -> None:
    """Run the topic filter over the window's posts and record every decision.

    Each post is kept under zero, one or several topics; `digest topics show`
    lists the result and `digest topics explain` says why.

    \b
    Examples:
      digest filter
      digest filter --json
    """
    from ..pipeline import run_filter
    from ..store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store, busy("filtering posts by topic", quiet or as_json):
        run = run_filter(settings, store, now=clock.now())
    summary = run_summary(run)
    if as_json:
        out.print_json(json.dumps(summary))
    elif not quiet:
        out.print(
            f"{summary['posts']} posts from {run.since:%Y-%m-%d %H:%M} to {run.until:%Y-%m-%d %H:%M} UTC: "
            f"{summary['kept']} kept, {summary['dropped']} dropped as off-topic."
        )
        for name, count in summary["topics"].items():
            out.print(f"  {name}: {count}", markup=False)


def run_summary(run: FilterRun) -> dict[str, Any]:
    per_topic = Counter(t for _, d in run.verdicts for t in d.topics)
    return {
        "run": run.id,
        "ran_at": run.ran_at.isoformat(),
        "since": run.since.isoformat(),
        "until": run.until.isoformat(),
        "posts": len(run.verdicts),
        "kept": sum(1 for _, d in run.verdicts if d.topics),
        "dropped": sum(1 for _, d in run.verdicts if not d.topics),
        "topics": {name: per_topic.get(name, 0) for name in run.topics},
    }


@cli.group()
def topics() -> None:
    """Inspect the topic filter: what it kept, what it dropped, and why."""


@topics.command(name="show")
@click.option("--json", "as_json", is_flag=True, help="Print every decision as JSON.")
@click.option("--limit", default=15, show_default=True, help="Posts shown per table (the JSON has them all).")
@click.pass_obj
def topics_show(state: State, as_json: bool, limit: int) -> None:
    """List the last filter run's kept posts per topic, and the dropped ones.

    \b
    Examples:
      digest topics show
      digest topics show --limit 50
      digest topics show --json > decisions.json
    """
    from ..store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        run = store.last_filter_run()
        if run is None:
            raise DigestError("the filter has not run yet; run `digest filter` first")
        posts = {p.id: p for p in store.posts(run.since, run.until)}
    rows = [(posts[pid], d) for pid, d in run.verdicts if pid in posts]
    if as_json:
        out.print_json(json.dumps(_show_json(run, rows)))
        return
    for name in run.topics:
        kept = sorted(((p, d) for p, d in rows if name in d.topics), key=lambda r: -r[1].scores.get(name, 0))
        _decision_table(f"{name}: {len(kept)} kept", kept, name, limit)
    dropped = sorted(((p, d) for p, d in rows if not d.topics), key=lambda r: -max(r[1].scores.values(), default=0))
    _decision_table(f"Dropped as off-topic: {len(dropped)}", dropped, None, limit)


def _show_json(run: FilterRun, rows: list[tuple[Post, Decision]]) -> dict[str, Any]:
    def item(post: Post, decision: Decision) -> dict[str, Any]:
        return {
            "id": post.id,
            "url": post.url,
            "author": post.author.handle or post.author.name,
            "text": (post.title or post.text)[:280],
            "topics": list(decision.topics),
            "scores": decision.scores,
            "noise_score": decision.noise_score,
        }

    return {
        "run": run_summary(run),
        "kept": {name: [item(p, d) for p, d in rows if name in d.topics] for name in run.topics},
        "dropped": [item(p, d) for p, d in rows if not d.topics],
    }


def _decision_table(title: str, rows: list[tuple[Post, Decision]], topic: str | None, limit: int) -> None:
    table = new_table(title=title, show_lines=False)
    table.add_column("score", justify="right")
    table.add_column("author", overflow="ellipsis", max_width=28)
    table.add_column("post", overflow="ellipsis", max_width=70, no_wrap=True)
    table.add_column("id")
    for post, decision in rows[:limit]:
        score = decision.scores.get(topic, 0) if topic else max(decision.scores.values(), default=0)
        text = " ".join((post.title or post.text).split())
        table.add_row(f"{score:.2f}", post.author.handle or post.author.name, text, post.id)
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} more (--limit, or --json for all)"
    out.print(table)


@topics.command(name="explain")
@click.argument("post")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.pass_obj
def topics_explain(state: State, post: str, as_json: bool) -> None:
    """Say why one post was kept or dropped: its score against each topic and
    threshold, and the terms that weighed most.

    POST is a post id (from `digest topics show`) or the post's URL.

    \b
    Examples:
      digest topics explain 3f9a1c0d2b7e4a51
      digest topics explain https://mastodon.social/@someone/113456789
    """
    from ..curate import touching
    from ..pipeline import explain_post
    from ..store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        found, explanation = explain_post(settings, store, post)
        recorded = store.last_filter_run().decision(found.id)  # type: ignore[union-attr]
        readers = touching(settings, store, found)
    decision = recorded or explanation.decision
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "id": found.id,
                    "url": found.url,
                    "topics": list(decision.topics),
                    "scores": decision.scores,
                    "thresholds": decision.thresholds,
                    "noise_score": decision.noise_score,
                    "terms": {k: [list(t) for t in v] for k, v in explanation.terms.items()},
                    "examples": {
                        k: [
                            {"text": t, "label": label, "similarity": cos, "shift": shift} for t, label, cos, shift in v
                        ]
                        for k, v in explanation.examples.items()
                    },
                    "readers": readers,
                }
            )
        )
        return
    verdict = f"kept under {', '.join(decision.topics)}" if decision.topics else "dropped as off-topic"
    out.print(
        f"{found.url}\n{found.author.handle or found.author.name}: {' '.join(found.text.split())[:200]}", markup=False
    )
    out.print(f"decision: {verdict} (noise score {decision.noise_score:.2f})", markup=False)
    for name, score in decision.scores.items():
        mark = "kept" if name in decision.topics else "below" if score < decision.thresholds[name] else "lost to noise"
        out.print(f"  {name}: score {score:.2f}, threshold {decision.thresholds[name]:.2f} ({mark})", markup=False)
        terms = ", ".join(f"{term} {weight:+.2f}" for term, weight in explanation.terms.get(name, ()))
        if terms:
            out.print(f"    terms: {terms}", markup=False)
        for text, label, cos, shift in explanation.examples.get(name, ()):
            way = "more like this" if label else "not for me"
            example = " ".join(text.split())[:80]
            out.print(
                f"    moved {shift:+.2f} by accepted example ({way}, similarity {cos:.2f}): {example}", markup=False
            )
    _print_readers(readers)
    if recorded and recorded.topics != explanation.decision.topics:
        out.print("note: the topics changed since that run; `digest filter` records fresh decisions", markup=False)


def _print_readers(readers: dict[str, Any]) -> None:
    """The readers' signals `topics explain` found touching a post (see `curate.touching`)."""
    way = {True: "for", False: "against"}
    lines = [
        f"  {s['topic']}: {s['not_for_me']} not for me, {s['more_like_this']} more like this"
        for s in readers["signals"]
    ]
    lines += [f"  accepted as an example {way[a['label']]} {a['topic']} ({a['origin']})" for a in readers["accepted"]]
    lines += [f"  like accepted example {e['post']} ({way[e['label']]} {e['topic']})" for e in readers["like_examples"]]
    out.print("readers' signals: " + ("none" if not lines else ""), markup=False)
    for line in lines:
        out.print(line, markup=False)


@topics.command(name="feedback")
@click.option(
    "--accept",
    "accepted",
    multiple=True,
    metavar="POST",
    help="Teach the topic from the signals on POST (id or URL), the way most of its readers pressed. Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the signals as JSON.")
@click.pass_obj
def topics_feedback(state: State, accepted: tuple[str, ...], as_json: bool) -> None:
    """List readers' signals per topic: each post, how many readers pressed
    "not for me" and "more like this", and whether it was accepted.

    With --accept, the signals on those posts become the topic's labelled
    examples, which the filter learns from at its next run: the edition in
    progress and later ones. A week whose editions are already composed
    keeps its decisions (a re-run sends the same ones). Until then a
    signal changes only its own reader's editions; a topic with
    accept_after = N accepts a post by itself once N readers agree.

    \b
    Examples:
      digest topics feedback
      digest topics feedback --accept 3f9a1c0d2b7e4a51 --accept 77aa01c2d3e4f5a6
    """
    from ..curate import accept, feedback
    from ..store import Store

    settings = state.settings()
    with Store.open(settings.database_url) as store:
        if accepted:
            done = accept(settings, store, accepted, clock.now())
            for post_id, topic, label in done:
                err.print(f"accepted {post_id} as an example {'for' if label else 'against'} {topic}", markup=False)
        tallies = feedback(settings, store)
    rows = [
        {
            "topic": t.topic,
            "post": t.post_id,
            "readers": t.readers,
            "not_for_me": t.less,
            "more_like_this": t.more,
            "accepted": t.accepted,
            "text": " ".join(t.text.split())[:300],
        }
        for t in tallies
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no reader has pressed a button yet", markup=False)
        return
    table = new_table(title="readers' signals")
    for column in ("topic", "post", "readers", "not for me", "more like this", "accepted", "text"):
        table.add_column(column, justify="right" if column in ("readers", "not for me", "more like this") else "left")
    labels = {None: "", True: "for", False: "against"}
    for t in tallies:
        text = " ".join(t.text.split())
        table.add_row(t.topic, t.post_id, str(t.readers), str(t.less), str(t.more), labels[t.accepted], text[:80])
    out.print(table)
