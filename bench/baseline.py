"""The weekly job as it was before it streamed (issue 16): digest's own code at a recorded commit, run on a
copy of the same store in the same benchmark run, so the weekly ratio compares two runs on one machine.

`checkout` extracts ``digest/`` at `COMMIT` with ``git archive`` (no worktree, nothing in the repository
changes); `run_week` runs that code's ``digest run --json --quiet`` in a fresh interpreter whose
``PYTHONPATH`` puts the old package first, and returns its wall time and peak RSS, both measured the way
the weekly benchmark measures today's (imports done before the clock, ``ru_maxrss`` at the end).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

__all__ = ["COMMIT", "checkout", "run_week"]

# main just before the first streaming change (4822d81, the filter reads documents only): weekly 100k
# measured 45.4 s and 636 MB there when the issue was filed; the store's schema is the same as today's
COMMIT = "fd2315e55aacec200e47b4b1d6520afd57a3c66a"

# the old job in its own interpreter: the modules `digest run` imports lazily first, then the run timed
_SCRIPT = """
import contextlib, importlib, io, json, resource, sys, time
import digest
assert digest.__file__.startswith(sys.argv[1]), digest.__file__
for name in ("digest.collect", "digest.pipeline", "digest.topics", "digest.compose", "digest.delivery", "digest.mail"):
    importlib.import_module(name)
import digest.cli as cli
out = io.StringIO()
start = time.perf_counter()
with contextlib.redirect_stdout(out):
    cli.main(["--config", sys.argv[2], "run", "--json", "--quiet"])
wall = time.perf_counter() - start
report = json.loads(out.getvalue())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": wall, "peak_mb": round(peak, 1), "sent": report["send"]["sent"]}))
"""


def checkout(dest: Path) -> Path | None:
    """``digest/`` at `COMMIT` under ``dest``, or None when this is no git checkout holding that commit."""
    archive = dest / "baseline.tar"
    try:
        subprocess.run(
            ["git", "archive", "--format=tar", "-o", str(archive), COMMIT, "digest"],
            check=True,
            capture_output=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    tree = dest / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


def run_week(tree: Path, config: Path, env: dict[str, str]) -> dict[str, Any]:
    """The old code's ``digest run`` on ``config``'s store: ``wall_s``, ``peak_mb`` and ``sent``."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tree), str(config)],
        check=True,
        capture_output=True,
        text=True,
        cwd=config.parent,
        env={**os.environ, **env, "PYTHONPATH": str(tree)},
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
