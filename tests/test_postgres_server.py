"""The PostgreSQL fixtures and `tests.postgres.PostgresServer` themselves."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest
import trio

from . import postgres as pg
from .postgres import Postgres, PostgresServer, PostgresUnavailable, process_is_running

# The databases the parametrized test below saw, to show each run has its own.
_seen_databases: set[str] = set()


def _select_one(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute("SELECT 1").fetchone()
    assert row is not None
    value: int = row[0]
    return value


def _user_tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[object]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
    ]


def test_session_server_answers_select_1(postgres: Postgres) -> None:
    assert _select_one(postgres.dsn) == 1


@pytest.mark.parametrize("run", [1, 2])
def test_pg_dsn_is_a_new_empty_database_for_each_test(pg_dsn: str, run: int) -> None:
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        name = str(row[0])
        assert name.startswith("t_")
        assert name not in _seen_databases
        _seen_databases.add(name)
        # Empty even though the other run left a table in its own database.
        assert _user_tables(conn) == []
        conn.execute("CREATE TABLE marker (run integer)")
        conn.execute("INSERT INTO marker VALUES (%s)", (run,))


async def test_trio_tests_use_pg_dsn_from_a_thread(pg_dsn: str) -> None:
    # The stores call psycopg's sync API off the trio thread, like this.
    assert await trio.to_thread.run_sync(_select_one, pg_dsn) == 1


def test_drop_database_closes_lingering_connections(postgres: Postgres) -> None:
    name = f"t_drop_{os.getpid()}"
    dsn = postgres.create_database(name)
    with psycopg.connect(dsn, autocommit=True) as lingering:
        postgres.drop_database(name)
        with pytest.raises(psycopg.OperationalError):
            lingering.execute("SELECT 1")
    with psycopg.connect(postgres.dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert row.fetchone() == (0,)
    postgres.drop_database(name)  # already gone: no error


def test_database_names_are_checked(postgres: Postgres) -> None:
    with pytest.raises(ValueError, match=r"^database name must match .*, got 'x; DROP'$"):
        postgres.create_database("x; DROP")


def test_server_listens_on_127_0_0_1_only(postgres: Postgres) -> None:
    if not isinstance(postgres, PostgresServer):
        pytest.skip("TRIO_SMITH_PG_DSN names a server we did not configure")
    assert postgres.dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    with psycopg.connect(postgres.dsn) as conn:
        row = conn.execute(
            "SELECT current_setting('listen_addresses'), host(inet_server_addr()),"
            " inet_server_port(), current_setting('max_connections')"
        ).fetchone()
    assert row == ("127.0.0.1", "127.0.0.1", postgres.port, "200")


def test_private_server_stops_and_starts_again_on_the_same_port(
    private_postgres: PostgresServer,
) -> None:
    server = private_postgres
    port, first_pid = server.port, server.pid
    assert first_pid is not None
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x integer)")
        conn.execute("INSERT INTO kept VALUES (42)")

    server.stop()
    # One comparison: mypy would keep `server.pid` narrowed to None after start().
    assert (server.running, server.pid) == (False, None)
    assert not process_is_running(first_pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn, connect_timeout=5)
    server.stop()  # idempotent

    server.start()
    assert server.port == port
    assert server.pid not in (None, first_pid)
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]


def test_immediate_stop_keeps_committed_rows(private_postgres: PostgresServer) -> None:
    server = private_postgres
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x integer)")
        conn.execute("INSERT INTO kept VALUES (7)")
    pid = server.pid
    assert pid is not None
    server.immediate_stop()
    assert not process_is_running(pid)
    server.start()  # runs crash recovery
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(7,)]
    assert "database system was interrupted" in server.log_path.read_text()


def test_restart_breaks_open_connections_and_keeps_the_port(
    private_postgres: PostgresServer,
) -> None:
    server = private_postgres
    port, pid = server.port, server.pid
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        server.restart()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    assert (server.port, server.running) == (port, True)
    assert server.pid != pid
    assert _select_one(server.dsn) == 1


def test_close_stops_the_postmaster_and_removes_the_directory(
    private_postgres: PostgresServer,
) -> None:
    server = private_postgres
    pid, directory = server.pid, server.directory
    assert pid is not None
    assert (directory / "data" / "PG_VERSION").exists()
    server.close()
    assert not process_is_running(pid)
    assert not directory.exists()
    server.close()  # idempotent; the fixture closes it once more
    with pytest.raises(pg.PostgresServerError, match=r"is closed$"):
        server.start()


def test_find_bindir_prefers_the_newest_debian_version(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16", "notaversion"):
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        for name in ("initdb", "pg_ctl", "postgres"):
            (bindir / name).write_text("#!/bin/sh\n")
            (bindir / name).chmod(stat.S_IRWXU)
    assert pg.find_bindir(tmp_path, search_path=str(tmp_path)) == tmp_path / "16" / "bin"


def test_find_bindir_without_binaries_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailable, match=r"^no initdb, pg_ctl and postgres in "):
        pg.find_bindir(tmp_path, search_path=str(tmp_path))


def _missing(root: Path = pg.DEBIAN_ROOT, *, search_path: str | None = None) -> Path:
    raise PostgresUnavailable("not here")


def test_missing_postgres_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "find_bindir", _missing)
    monkeypatch.delenv("CI", raising=False)
    with (
        pytest.raises(pytest.skip.Exception, match=r"apt-get install postgresql.*\(not here\)$"),
        pg.private_server(),
    ):
        pass


def test_missing_postgres_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "find_bindir", _missing)
    monkeypatch.setenv("CI", "true")
    with (
        pytest.raises(pytest.fail.Exception, match=r"^PostgreSQL tests must run in CI"),
        pg.private_server(),
    ):
        pass
