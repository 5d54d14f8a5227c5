"""``python -m bench [--quick] [--only NAME] [--json] [--profile DIR]``: run digest's benchmarks.

Prints a table (and notes) with rich; with ``--json`` prints only one JSON object on stdout:
``{"machine": "...", "quick": bool, "benchmarks": {name: entry}, "targets": {name: {"target", "met"}},
"all_met": bool}`` (see `bench.common` for an entry's keys): ``targets`` names every entry run, with
``met`` null where the entry states no target (or was skipped), and ``all_met`` is true only when
every entry states a target and meets it. Progress goes to stderr. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import BENCHMARKS, load
from .common import PROFILE_ENV, Entry, machine


def main(argv: list[str] | None = None) -> int:
    names = sorted({entry for entries in BENCHMARKS.values() for entry in entries} | set(BENCHMARKS))
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run digest's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="a small, fast run (a CI smoke test, under ~60 s)")
    parser.add_argument("--only", metavar="NAME", choices=names, help=f"one benchmark: {', '.join(names)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--profile", metavar="DIR", type=Path, help="write cProfile files of the measured code to DIR")
    args = parser.parse_args(argv)
    if args.profile:
        os.environ[PROFILE_ENV] = str(args.profile.resolve())

    err = Console(stderr=True)
    results: dict[str, Entry] = {}
    for module, entries in BENCHMARKS.items():
        if args.only and args.only != module and args.only not in entries:
            continue
        err.print(f"[dim]running {module}{' (quick)' if args.quick else ''}...[/dim]")
        start = time.perf_counter()
        produced = load(module)(args.quick)
        err.print(f"[dim]{module} done in {time.perf_counter() - start:.1f} s[/dim]")
        if args.only and args.only != module:
            produced = {k: v for k, v in produced.items() if k == args.only}
        results.update(produced)

    targets = targets_of(results)
    report: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "benchmarks": results,
        "targets": targets,
        "all_met": bool(targets) and all(t["met"] is True for t in targets.values()),
    }
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        console = Console()
        console.width = max(console.width, 150)
        _print_table(console, report)
    return 0


def targets_of(results: dict[str, Entry]) -> dict[str, dict[str, Any]]:
    """Each entry's target in words and whether it was met (None: no target stated, or skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in results.items():
        met = entry.get("target_met")
        target = entry.get("target") or ("skipped: " + entry["skipped"] if entry.get("skipped") else "none stated")
        out[name] = {"target": target, "met": met if isinstance(met, bool) else None}
    return out


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if abs(value) < 10:
            return f"{value:.3g}{unit}"
        return f"{value:.1f}{unit}" if abs(value) < 1000 else f"{value:,.0f}{unit}"
    return f"{value}{unit}"


def _print_table(console: Console, report: dict[str, Any]) -> None:
    table = Table(title=f"digest benchmarks{' (quick)' if report['quick'] else ''}", caption=report["machine"])
    for column, justify in (
        ("benchmark", "left"),
        ("size", "right"),
        ("value", "right"),
        ("baseline", "right"),
        ("x better", "right"),
        ("floor", "right"),
        ("value/floor", "right"),
        ("peak MB", "right"),
        ("target", "left"),
        ("met", "center"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, entry in report["benchmarks"].items():
        unit = f" {entry['unit']}" if entry.get("unit") else ""
        met = entry.get("target_met")
        table.add_row(
            name,
            entry.get("size") or (f"{entry['feeds']:,} feeds" if entry.get("feeds") else ""),
            _fmt(entry["value"], unit),
            _fmt(entry.get("baseline"), unit),
            _fmt(entry.get("ratio"), "x"),
            _fmt(entry.get("floor"), unit),
            _fmt(entry.get("floor_ratio"), "x"),
            _fmt(entry.get("peak_mb")),
            entry.get("target", ""),
            "" if met is None else ("[green]yes[/green]" if met else "[red]no[/red]"),
        )
    console.print(table)
    for name, entry in report["benchmarks"].items():
        details = [f"{k}={v}" for k, v in entry.items() if k.endswith(("_cpu_s", "_in_flight", "_peak_mb"))]
        if details:
            console.print(f"[bold]{name}[/bold]: " + ", ".join(details))
        for key in ("baseline_note", "floor_note"):
            if entry.get(key):
                console.print(f"  {key.removesuffix('_note')}: {escape(entry[key])}")
        if entry.get("errors"):
            console.print(f"  [red]errors[/red]: {escape(str(entry['errors']))}")
    owners: dict[str, list[str]] = {}
    for name, entry in report["benchmarks"].items():
        for note in entry.get("notes", ()):
            owners.setdefault(note, []).append(name)
    for note, names in owners.items():
        scope = "" if len(names) == len(report["benchmarks"]) else f"{', '.join(names)}: "
        console.print(f"[dim]- {escape(scope + note)}[/dim]")


if __name__ == "__main__":
    raise SystemExit(main())
