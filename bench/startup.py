"""Benchmark: how long a command takes to start, ``digest --version``, ``--help`` and ``check``.

Entry ``startup``: each command run 5 times in a fresh process (``python -m digest ...``, the shipped
``feeds.toml`` copied to a fresh folder, so ``check`` finds no store to read, as on a new install;
reading an existing store loads SQLAlchemy), the median CPU seconds (user + system, from the child's rusage) of each; the floor is
``python -c pass`` measured the same way in the same run. Value: the slowest of the three. Target
(the start-up issue): at most 0.3 CPU-s each. Not in ``--quick``: CPU times of tiny processes are
noise on a shared CI machine.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import Entry, rounded

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 5
TARGET_CPU_S = 0.3
COMMANDS = {"version": ["--version"], "help": ["--help"], "check": ["--config", "feeds.toml", "check"]}  # run in FOLDER


def _cpu_of(argv: list[str], folder: Path) -> float:
    """CPU seconds (user + system) of one child process running ``argv`` in ``folder``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=folder, capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _median(argv: list[str], folder: Path) -> float:
    return statistics.median(_cpu_of(argv, folder) for _ in range(ROUNDS))


def run(quick: bool) -> dict[str, Entry]:
    """The start-up entry; nothing in quick mode."""
    if quick:
        return {}
    with tempfile.TemporaryDirectory(prefix="digest-startup-") as where:
        folder = Path(where)
        shutil.copy(ROOT / "feeds.toml", folder / "feeds.toml")
        floor = _median([sys.executable, "-c", "pass"], folder)
        cpu = {name: _median([sys.executable, "-m", "digest", *argv], folder) for name, argv in COMMANDS.items()}
    worst = max(cpu.values())
    entry: Entry = {
        "value": rounded(worst),
        "unit": "CPU-s",
        "size": "digest --version / --help / check",
        **{f"{name}_cpu_s": rounded(value) for name, value in cpu.items()},
        "floor": rounded(floor),
        "floor_ratio": rounded(worst / floor, 1) if floor else None,
        "floor_note": "python -c pass, the same way, in the same run",
        "peak_mb": 0.0,
        "target": f"<= {TARGET_CPU_S} CPU-s each",
        "target_met": worst <= TARGET_CPU_S,
        "notes": [f"median of {ROUNDS} fresh processes each; CPU time (user + system) of the child, not wall time"],
    }
    return {"startup": entry}
