"""Project-wide test set-up: hypothesis profiles, the real-time test limit, PostgreSQL,
and file systems of the tests' own (tests/mounts.py: ``small_disk``, ``read_only_copy``).

The PostgreSQL fixtures start a server only when a test asks for one:

- ``postgres`` (session): the server, a `tests.postgres.Postgres`. With
  ``TRIO_SMITH_PG_DSN`` set it is that running server (no restarts); otherwise
  a private `tests.postgres.PostgresServer` (fsync off) for the session.
- ``pg_dsn``: a DSN for a new, empty database of the test's own on it, dropped
  after the test.
- ``private_postgres``: a `tests.postgres.PostgresServer` of the test's own,
  for tests that stop, crash or restart the server; closed after the test.

Without PostgreSQL's binaries these skip, except under ``CI``, where they fail.
"""

from __future__ import annotations

import inspect
import itertools
import os
import secrets
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from ._limits import with_real_time_limit
from .mounts import read_only_copy as read_only_copy
from .mounts import small_disk as small_disk
from .postgres import ExistingPostgres, Postgres, PostgresServer, private_server

#: Real seconds any single async test may take (virtual time is unlimited).
REAL_TIME_LIMIT = 60.0

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # Runs before pytest-trio's own wrapper, so the limit sits inside trio.run.
    fn = getattr(item, "obj", None)
    if (
        item.get_closest_marker("trio") is not None
        and inspect.iscoroutinefunction(fn)
        and not hasattr(fn, "hypothesis")
    ):
        item.obj = with_real_time_limit(fn, REAL_TIME_LIMIT)  # type: ignore[attr-defined]
    yield


# Unique across the session and across processes sharing one server (xdist
# workers, several runs on one TRIO_SMITH_PG_DSN); the random part because
# containers reuse PIDs and a killed run leaves its databases behind.
_database_numbers = itertools.count(1)
_run_id = f"{os.getpid()}_{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's PostgreSQL server: ``$TRIO_SMITH_PG_DSN``'s or a private one."""
    dsn = os.environ.get("TRIO_SMITH_PG_DSN")
    if dsn:
        yield ExistingPostgres(dsn)
        return
    with private_server() as server:
        yield server


@pytest.fixture
def pg_dsn(postgres: Postgres) -> Iterator[str]:
    """A DSN for a new, empty database of this test's own, dropped after it."""
    name = f"t_{next(_database_numbers)}_{_run_id}"
    dsn = postgres.create_database(name)
    yield dsn
    postgres.drop_database(name)


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (stop, crash, restart it), closed after it."""
    with private_server() as server:
        yield server
