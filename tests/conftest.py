"""Project-wide test set-up: hypothesis profiles and the real-time test limit."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from ._limits import with_real_time_limit

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
