"""Benchmarks for digest, run from the repository root with ``python -m bench``.

Each benchmark module in this package exposes one function, ``run(quick: bool) -> dict[str, Entry]``
(see `bench.common`), and is listed in `BENCHMARKS` with the entry names it produces. Adding a
stage (filter, compose, send, weekly) is one module and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["BENCHMARKS", "load"]

# module name -> the entries its run() returns (in full mode; --quick may return fewer).
BENCHMARKS: dict[str, tuple[str, ...]] = {
    "collect": ("collect", "collect_500", "collect_304"),
    "filter": ("filter", "filter_10k"),
    "compose": ("compose",),
    "send": ("send",),
    "weekly": ("weekly",),
    "quality": ("quality", "quality_multi", "quality_cross"),
    "shared": ("collect_workers", "send_workers"),
    "startup": ("startup",),
}


def load(module: str) -> Callable[[bool], dict[str, dict[str, Any]]]:
    """The ``run`` function of a benchmark module."""
    run: Callable[[bool], dict[str, dict[str, Any]]] = importlib.import_module(f"{__name__}.{module}").run
    return run
