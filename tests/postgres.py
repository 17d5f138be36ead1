"""A private PostgreSQL server for the tests, on 127.0.0.1 only.

Theory of operation: `PostgresServer.start_new()` makes a temporary directory,
runs ``initdb`` into ``<directory>/data`` (trust authentication, user
``postgres``, UTF8, locale C), writes our settings to
``<directory>/data/trio_smith.conf`` (included from ``postgresql.conf``:
listen on 127.0.0.1 only, a free port, the Unix socket in the temporary
directory, ``max_connections = 200``, ``fsync`` on or off) and starts the
postmaster with ``pg_ctl -w``, which returns once the server accepts
connections. The settings live in the data directory, so `start()` after
`stop()` brings the server back on the SAME port and clients reconnect to the
DSN they already have.

PostgreSQL refuses to run as root, so when we are root ``initdb`` and
``pg_ctl`` run as the ``postgres`` system user through ``runuser`` and the
directory is given to that user; otherwise they run as us.

Stopping signals the postmaster by PID (SIGINT: fast shutdown; SIGQUIT:
immediate shutdown, the crash-like stop after which the next start runs crash
recovery) and polls until the process is gone. The postmaster is not our child
(``pg_ctl`` daemonizes it), so we cannot ``waitpid``; and on a machine whose
PID 1 does not reap orphans a stopped postmaster stays a zombie, which counts
as gone. Every running server is registered with an ``atexit`` hook of the
process that started it, the backstop that never leaves a server running.

The session's server runs with ``fsync = off``: a stopped or crashed
*postmaster* loses nothing (its writes are in the kernel's page cache), only an
operating-system crash would. ``synchronous_commit`` stays on so that a commit
that returned survives `immediate_stop()`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Protocol, Self, final

import pytest

#: Where Debian (and Ubuntu) install each major version: /usr/lib/postgresql/<N>/bin.
DEBIAN_ROOT = Path("/usr/lib/postgresql")

#: Connections a server accepts; multi-process tests open many.
MAX_CONNECTIONS = 200

#: Seconds `pg_ctl -w` waits for a start, and `stop()` for the postmaster to exit.
START_TIMEOUT = 60
STOP_TIMEOUT = 30.0

#: Ports tried when the free port we picked was taken before the server bound it.
PORT_ATTEMPTS = 5

_SKIP_MESSAGE = (
    "PostgreSQL is not installed (Debian: apt-get install postgresql); "
    "set TRIO_SMITH_PG_DSN to use a running server"
)

# A database name we are willing to put in SQL and a DSN unquoted.
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries (or a user to run them as) are not on this machine."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PostgresServerError(RuntimeError):
    """A private server failed to initialise, start or stop; the message has its log's tail."""


class Postgres(Protocol):
    """What the ``postgres`` fixture yields: a server to make test databases on."""

    @property
    def dsn(self) -> str:
        """A DSN for the server's ``postgres`` database."""
        ...

    def create_database(self, name: str) -> str:
        """Create the empty database *name* and return a DSN for it."""
        ...

    def drop_database(self, name: str) -> None:
        """Drop the database *name*, closing any connections to it."""
        ...


# ---------------------------------------------------------------- binaries


def find_bindir(root: Path = DEBIAN_ROOT, *, search_path: str | None = None) -> Path:
    """Find the directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Tries, in order: the newest ``<root>/<version>/bin``, ``pg_config --bindir``
    and the directories of *search_path* (``$PATH`` when None).

    Args:
        root: the directory of per-version installs (Debian's layout).
        search_path: where to look for ``pg_config`` and ``initdb``.

    Returns:
        The directory.

    Raises:
        PostgresUnavailable: none of them has the binaries.
    """
    versions: list[tuple[tuple[int, ...], Path]] = []
    for bindir in root.glob("*/bin"):
        key = _version_key(bindir.parent.name)
        if key is not None:
            versions.append((key, bindir))
    candidates = [bindir for _, bindir in sorted(versions, reverse=True)]
    pg_config = shutil.which("pg_config", path=search_path)
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(result.stdout.strip()))
    initdb = shutil.which("initdb", path=search_path)
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresUnavailable(
        f"no initdb, pg_ctl and postgres in {str(root / '*' / 'bin')!r}, "
        "in pg_config --bindir or on PATH"
    )


def _version_key(name: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return None


def _run_as() -> list[str]:
    """The command prefix that runs a PostgreSQL binary as a user it accepts."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root, and runuser is missing to run as 'postgres'")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root, and there is no 'postgres' user to run the server as"
        ) from None
    return [runuser, "-u", "postgres", "--"]


def _clean_environment() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST... would steer pg_ctl and the postmaster elsewhere.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_is_running(pid: int) -> bool:
    """Whether process *pid* exists and is not a zombie.

    Args:
        pid: a process id, not necessarily our child.

    Returns:
        False once the process has exited, even if nobody reaped it yet.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Exists but is not ours to signal: the PID was reused by someone else.
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        # Without /proc (not Linux) trust kill(); with it, the process just went.
        return not Path("/proc/self/stat").exists()
    # Field 3, after "(comm)" which may itself hold spaces and parentheses.
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


# ---------------------------------------------------------------- databases


def create_database(dsn: str, name: str) -> str:
    """Create the empty database *name* on the server of *dsn*.

    Args:
        dsn: any DSN for the server, connecting as a user allowed to create databases.
        name: lower case letters, digits and underscores.

    Returns:
        *dsn* with its database replaced by *name*.

    Raises:
        ValueError: *name* is not a plain identifier.
        psycopg.Error: the server refused.
    """
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    _check_database_name(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(dsn, dbname=name)


def drop_database(dsn: str, name: str) -> None:
    """Drop the database *name* if it exists, closing connections that linger in it.

    Args:
        dsn: a DSN for another database of the same server.
        name: the database to drop.

    Raises:
        ValueError: *name* is not a plain identifier.
        psycopg.Error: the server refused.
    """
    import psycopg
    from psycopg import sql

    _check_database_name(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # WITH (FORCE) (PostgreSQL 13+) terminates the sessions still connected.
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _check_database_name(name: str) -> None:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name must match {_DATABASE_NAME.pattern}, got {name!r}")


@final
class ExistingPostgres:
    """A server someone else runs (``TRIO_SMITH_PG_DSN``); it cannot be stopped or restarted.

    Args:
        dsn: a DSN connecting as a user who may create and drop databases.
    """

    __slots__ = ("dsn",)

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def create_database(self, name: str) -> str:
        """Create the empty database *name* and return a DSN for it."""
        return create_database(self.dsn, name)

    def drop_database(self, name: str) -> None:
        """Drop the database *name*, closing any connections to it."""
        drop_database(self.dsn, name)


# ---------------------------------------------------------------- the server

# Servers that are running, by the PID of the process that started them; the
# atexit hook stops those of its own process only, so that a forked child that
# exits normally does not take its parent's server down.
_running: dict[PostgresServer, int] = {}


@final
class PostgresServer:
    """A private PostgreSQL server in a temporary directory, on 127.0.0.1 only.

    Build one with `start_new()`; use it as a context manager or call
    `close()`. Not thread-safe: one test drives it.
    """

    __slots__ = ("_bindir", "_closed", "_directory", "_fsync", "_pid", "_port", "_prefix")

    def __init__(
        self, *, directory: Path, bindir: Path, prefix: Sequence[str], port: int, fsync: bool
    ) -> None:
        self._directory = directory
        self._bindir = bindir
        self._prefix = list(prefix)
        self._port = port
        self._fsync = fsync
        # Invariant: _pid is the postmaster's PID while the server runs, None otherwise.
        self._pid: int | None = None
        self._closed = False

    # ------------------------------------------------------------ construction

    @classmethod
    def start_new(cls, *, fsync: bool = False) -> PostgresServer:
        """Initialise a new cluster in a temporary directory and start it.

        Args:
            fsync: whether the server flushes its writes to disk (off: faster,
                and safe against postmaster crashes, not operating-system ones).

        Returns:
            The running server.

        Raises:
            PostgresUnavailable: PostgreSQL's binaries are not installed.
            PostgresServerError: initdb or the start failed.
        """
        bindir = find_bindir()
        prefix = _run_as()
        directory = Path(tempfile.mkdtemp(prefix="trio_smith_pg_"))
        server = cls(directory=directory, bindir=bindir, prefix=prefix, port=0, fsync=fsync)
        try:
            server._initdb()
            for attempt in range(PORT_ATTEMPTS):
                server._port = _free_port()
                server._write_settings()
                try:
                    server.start()
                    break
                except PostgresServerError:
                    # Someone took the port between our probe and the bind.
                    if attempt + 1 == PORT_ATTEMPTS or "already in use" not in server.log_tail():
                        raise
        except BaseException:
            server.close()
            raise
        return server

    def _initdb(self) -> None:
        if self._prefix:
            shutil.chown(self._directory, "postgres", "postgres")
        args = [
            str(self._bindir / "initdb"),
            "--pgdata",
            str(self.data_directory),
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if not self._fsync:
            args.append("--no-sync")
        result = self._run(args)
        if result.returncode != 0:
            raise PostgresServerError(
                f"initdb failed with exit status {result.returncode}:\n{result.stdout}"
            )
        with (self.data_directory / "postgresql.conf").open("a") as conf:
            conf.write("\n# trio_smith's tests\ninclude = 'trio_smith.conf'\n")

    def _write_settings(self) -> None:
        socket_dir = str(self._directory).replace("'", "''")
        path = self.data_directory / "trio_smith.conf"
        path.write_text(
            f"listen_addresses = '127.0.0.1'\n"
            f"port = {self._port}\n"
            f"unix_socket_directories = '{socket_dir}'\n"
            f"max_connections = {MAX_CONNECTIONS}\n"
            f"fsync = {'on' if self._fsync else 'off'}\n"
        )
        if self._prefix:
            shutil.chown(path, "postgres", "postgres")

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._prefix, *args],
            cwd=self._directory,
            env=_clean_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )

    # ------------------------------------------------------------ state

    @property
    def dsn(self) -> str:
        """A DSN for the ``postgres`` database, as user ``postgres`` over TCP."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        """A DSN for *database* on this server."""
        return f"postgresql://postgres@127.0.0.1:{self._port}/{database}"

    @property
    def port(self) -> int:
        """The TCP port; the same across `stop()` and `start()`."""
        return self._port

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while the server runs, else None."""
        return self._pid

    @property
    def running(self) -> bool:
        """Whether the server was started and not stopped since."""
        return self._pid is not None

    @property
    def directory(self) -> Path:
        """The temporary directory: ``data/``, ``server.log`` and the Unix socket."""
        return self._directory

    @property
    def data_directory(self) -> Path:
        """The cluster's data directory."""
        return self._directory / "data"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self._directory / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        """The last *lines* lines of the server's log ('' before there is one)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the server on its port and wait until it accepts connections.

        Does nothing if it is running.

        Raises:
            PostgresServerError: the server did not start (the message has the
                log's tail), or it was closed.
        """
        if self._closed:
            raise PostgresServerError(f"server in {str(self._directory)!r} is closed")
        if self._pid is not None:
            return
        result = self._run(
            [
                str(self._bindir / "pg_ctl"),
                "start",
                "--pgdata",
                str(self.data_directory),
                "--log",
                str(self.log_path),
                "--wait",
                f"--timeout={START_TIMEOUT}",
            ]
        )
        pid = self._read_pid()
        if result.returncode != 0 or pid is None:
            if pid is not None and process_is_running(pid):
                # pg_ctl gave up waiting on a postmaster that is still there.
                self._pid = pid
                with contextlib.suppress(PostgresServerError):
                    self._stop(signal.SIGQUIT)
            raise PostgresServerError(
                f"PostgreSQL did not start on 127.0.0.1:{self._port} "
                f"(pg_ctl exit status {result.returncode}):\n{result.stdout}\n"
                f"--- {self.log_path}:\n{self.log_tail()}"
            )
        self._pid = pid
        _running[self] = os.getpid()

    def _read_pid(self) -> int | None:
        try:
            first = (self.data_directory / "postmaster.pid").read_text().split("\n", 1)[0]
        except FileNotFoundError:
            return None
        return int(first) if first.strip().isdigit() else None

    def stop(self) -> None:
        """Fast shutdown: end the sessions, checkpoint, wait for the postmaster to exit.

        Does nothing if the server is not running.

        Raises:
            PostgresServerError: it did not exit within `STOP_TIMEOUT` seconds
                (it is then killed).
        """
        self._stop(signal.SIGINT)

    def immediate_stop(self) -> None:
        """Immediate shutdown, like a crash: no checkpoint; the next start recovers.

        Does nothing if the server is not running.

        Raises:
            PostgresServerError: it did not exit within `STOP_TIMEOUT` seconds
                (it is then killed).
        """
        self._stop(signal.SIGQUIT)

    def restart(self) -> None:
        """`stop()` then `start()`: same port, same data, a new postmaster."""
        self.stop()
        self.start()

    def _stop(self, signum: signal.Signals) -> None:
        pid = self._pid
        if pid is None:
            return
        try:
            for sig in (signum, signal.SIGQUIT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if _wait_for_exit(pid, STOP_TIMEOUT):
                    if sig != signum:
                        raise PostgresServerError(
                            f"postmaster {pid} ignored {signum.name} for {STOP_TIMEOUT} s "
                            f"and was stopped with {sig.name}:\n{self.log_tail()}"
                        )
                    return
            raise PostgresServerError(f"postmaster {pid} survived SIGKILL")
        finally:
            self._pid = None
            _running.pop(self, None)

    def close(self) -> None:
        """Stop the server if it runs and remove its directory; idempotent."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid={self._pid}" if self._pid is not None else "stopped"
        return f"<PostgresServer 127.0.0.1:{self._port} {state} in {str(self._directory)!r}>"

    # ------------------------------------------------------------ databases

    def create_database(self, name: str) -> str:
        """Create the empty database *name* and return a DSN for it.

        Raises:
            ValueError: *name* is not a plain lower-case identifier.
        """
        create_database(self.dsn, name)
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop the database *name* if it exists, closing any connections to it."""
        drop_database(self.dsn, name)


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_is_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


@atexit.register
def _stop_leftover_servers() -> None:
    me = os.getpid()
    for server, owner in list(_running.items()):
        if owner == me:
            with contextlib.suppress(Exception):
                server.close()


# ---------------------------------------------------------------- for fixtures


def unavailable(reason: str) -> NoReturn:
    """Skip the test because PostgreSQL is missing, or fail it when ``$CI`` is set.

    In CI the PostgreSQL tests must never be skipped: ``.ci/run`` installs
    the server, so a missing one there is a broken CI set-up.

    Raises:
        pytest.fail.Exception: ``$CI`` is set.
        pytest.skip.Exception: otherwise.
    """
    if os.environ.get("CI"):
        pytest.fail(
            f"PostgreSQL tests must run in CI, but the server cannot start: {reason} "
            "(.ci/run installs Debian's postgresql package)",
            pytrace=False,
        )
    pytest.skip(f"{_SKIP_MESSAGE} ({reason})")


@contextlib.contextmanager
def private_server(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """A new `PostgresServer` for the block, closed after it; skips if PostgreSQL is missing.

    Args:
        fsync: passed to `PostgresServer.start_new()`.

    Yields:
        The running server.
    """
    try:
        server = PostgresServer.start_new(fsync=fsync)
    except PostgresUnavailable as exc:
        unavailable(exc.reason)
    with server:
        yield server
