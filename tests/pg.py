"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary folder, one server per session.

    cluster = Cluster.start()           # initdb + postgres on 127.0.0.1:<free port>, fsync off
    url = cluster.new_database()        # postgresql+psycopg://digest:secret@127.0.0.1:PORT/test_1
    cluster.stop()                      # the server and its folder are gone

The binaries come from ``/usr/lib/postgresql/*/bin`` (Debian's layout), ``pg_config --bindir`` or
the PATH. initdb and postgres refuse to run as root, so as root they run as the ``postgres``
system user, in a folder handed over to it. The cluster trusts every local connection, so the
password in the URLs is never checked (it is there to show that no command prints it).

`unavailable` says why the cluster cannot run here (no binaries, no psycopg), or "" when it can.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PASSWORD", "Cluster", "bindir", "unavailable"]

PASSWORD = "pg-test-secret"  # trust auth ignores it; tests check that no output shows it
USER = "digest"
START_TIMEOUT = 30.0


def bindir() -> Path | None:
    """The folder holding initdb and postgres (the newest installed version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable() -> str:
    """Why PostgreSQL cannot run for the tests here, or "" when it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]' or '.[postgres]')"
    if bindir() is None:
        return "no PostgreSQL binaries (initdb, postgres) found in /usr/lib/postgresql/*/bin, pg_config or PATH"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` system user to run initdb and postgres as"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing, so initdb and postgres cannot drop root"
    return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """One running PostgreSQL server in a temporary folder; `new_database` gives each test its own."""

    def __init__(self, folder: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.folder, self.port, self.process = folder, port, process
        self._names = itertools.count(1)

    @classmethod
    def start(cls) -> Cluster:
        """initdb and start a server on 127.0.0.1 on a free port; raise RuntimeError with its log if it fails."""
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        bin_ = bindir()
        assert bin_ is not None
        folder = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        data = folder / "data"
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        try:
            _run_as_owner(
                [str(bin_ / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync"],
                folder,
            )
            port = _free_port()
            options = ["-F", "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
            options += ["-c", "listen_addresses=127.0.0.1", "-p", str(port), "-c", f"unix_socket_directories={folder}"]
            log = (folder / "postgres.log").open("wb")
            command = _as_owner([str(bin_ / "postgres"), "-D", str(data), *options])
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            cluster = cls(folder, port, process)
            cluster._wait_ready()
        except BaseException:
            with contextlib.suppress(NameError):
                _kill(process)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cluster

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """CREATE DATABASE from the empty template; return its SQLAlchemy URL."""
        name = f"test_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `new_database`, closing connections a test left open."""
        self._admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        _kill(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres", autocommit=True) as conn:
            conn.execute(statement.encode())

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {self.log()}")
            try:
                psycopg.connect(
                    host="127.0.0.1", port=self.port, user=USER, dbname="postgres", connect_timeout=2
                ).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres did not accept connections in {START_TIMEOUT:.0f} s: {self.log()}"
                    ) from exc
                time.sleep(0.1)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "postgres.log").read_text(errors="replace")[-2000:]
        return ""


def _as_owner(command: Sequence[str]) -> list[str]:
    """The command as the `postgres` user when we are root (initdb and postgres refuse root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


def _run_as_owner(command: Sequence[str], cwd: Path) -> None:
    done = subprocess.run(_as_owner(command), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed ({done.returncode}): {done.stdout}{done.stderr}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown of the server (SIGINT to its process group), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
