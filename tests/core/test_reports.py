"""The crash-report burst limit (``ReportBudget``) against a naive model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_smith import ReportLimit
from trio_smith._core._reports import ReportBudget


def naive(limit: ReportLimit, times: list[float]) -> tuple[list[tuple[bool, int]], int]:
    """Replay every report from scratch: windows open at the first report after the last closed."""
    answers = []
    opened = None
    written: list[float] = []
    refused_since_summary = 0
    for now in times:
        summary = 0
        if opened is None or now >= opened + limit.window:
            opened = now
            written = []
            summary, refused_since_summary = refused_since_summary, 0
        if len(written) < limit.burst:
            written.append(now)
            answers.append((True, summary))
        else:
            refused_since_summary += 1
            answers.append((False, summary))
    return answers, refused_since_summary


@given(
    burst=st.integers(1, 5),
    window=st.sampled_from([0.5, 1.0, 3.0]),
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0]), max_size=40),
)
def test_the_budget_matches_the_naive_model(burst: int, window: float, gaps: list[float]) -> None:
    limit = ReportLimit(burst=burst, window=window)
    times = []
    now = 0.0
    for gap in gaps:
        now += gap
        times.append(now)
    budget = ReportBudget(limit)
    assert [budget.take(t) for t in times] == naive(limit, times)[0]
    assert budget.flush() == naive(limit, times)[1]
    assert budget.flush() == 0
    assert budget.full <= burst


def test_a_burst_then_a_summary_when_the_next_window_opens() -> None:
    budget = ReportBudget(ReportLimit(burst=2, window=1.0))
    assert [budget.take(0.0), budget.take(0.1), budget.take(0.2), budget.take(0.9)] == [
        (True, 0),
        (True, 0),
        (False, 0),
        (False, 0),
    ]
    assert budget.take(1.0) == (True, 2)
    assert budget.flush() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"burst": 0}, "burst must be an int >= 1, got 0"),
        ({"burst": 1.5}, "burst must be an int >= 1, got 1.5"),
        ({"burst": True}, "burst must be an int >= 1, got True"),
        ({"window": 0}, "window must be a finite number > 0, got 0"),
        ({"window": float("inf")}, "window must be a finite number > 0, got inf"),
        ({"window": "1"}, "window must be a finite number > 0, got '1'"),
    ],
)
def test_bad_limits_are_refused_naming_the_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="must be") as caught:
        ReportLimit(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_the_default_is_ten_reports_per_second() -> None:
    assert ReportLimit() == ReportLimit(burst=10, window=1.0)
