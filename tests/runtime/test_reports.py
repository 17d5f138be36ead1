"""Crash reports: burst-limited per supervisor, with structured fields on every record."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from trio_smith import ChildSpec, ReportLimit, RestartIntensityExceeded, Supervisor
from trio_smith.events import SupervisionEvent

from ..publisher import Recorder


def crash_loop(every: float, times: int):  # type: ignore[no-untyped-def]
    count = 0

    async def crash() -> None:
        nonlocal count
        count += 1
        if count > times:
            await trio.sleep_forever()
        await trio.sleep(every)
        raise ValueError(f"crash {count}")

    return crash


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_crash_loop_writes_a_burst_of_full_reports_then_one_summary(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # 25 crashes 0.01 s apart: the first 10 in full (with traceback), the
    # other 15 are counted and summarised when the supervisor stops.
    fn = crash_loop(0.01, 25)
    async with Supervisor([ChildSpec("c", fn)], name="s", max_restarts=100) as sup:
        await trio.sleep(1)
        await sup.shutdown()
    records = errors(caplog)
    full = [r for r in records if r.getMessage() == "child 'c' of supervisor 's' failed"]
    assert len(full) == 10
    assert all(r.exc_info is not None for r in full)
    assert [r.getMessage() for r in records[10:]] == [
        "supervisor 's': 15 more crash reports not written (at most 10 in full per 1 s); "
        "its events and statistics count every failure"
    ]
    assert records[10].suppressed == 15  # type: ignore[attr-defined]


async def test_the_summary_comes_when_the_next_window_opens(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Crashes every 0.4 s with 2 per second allowed: 0.4 (opening a window
    # until 1.4) and 0.8 in full, 1.2 refused, 1.6 opens the next window:
    # the summary of 1, then in full.
    fn = crash_loop(0.4, 4)
    limit = ReportLimit(burst=2, window=1.0)
    async with Supervisor(
        [ChildSpec("c", fn)], name="s", report_limit=limit, max_restarts=10
    ) as sup:
        await trio.sleep(2)
        await sup.shutdown()
    assert [r.getMessage() for r in errors(caplog)] == [
        "child 'c' of supervisor 's' failed",
        "child 'c' of supervisor 's' failed",
        "supervisor 's': 1 more crash reports not written (at most 2 in full per 1 s); "
        "its events and statistics count every failure",
        "child 'c' of supervisor 's' failed",
    ]


async def test_no_limit_writes_every_report(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    fn = crash_loop(0.01, 25)
    async with Supervisor(
        [ChildSpec("c", fn)], name="s", max_restarts=100, report_limit=None
    ) as sup:
        await trio.sleep(1)
        await sup.shutdown()
    assert len(errors(caplog)) == 25


async def test_events_count_every_failure_whatever_the_logs_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    fn = crash_loop(0.01, 25)
    async with Supervisor([ChildSpec("c", fn)], max_restarts=100, events=rec) as sup:
        await trio.sleep(1)
        await sup.shutdown()
    assert len(rec.of(SupervisionEvent.CHILD_FAILED)) == 25


async def test_every_record_carries_structured_fields(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_smith")
    rec = Recorder()

    async def fails() -> None:
        await trio.sleep(1)
        raise OSError("disk")

    async def runs_a_branch() -> None:
        async with Supervisor([ChildSpec("f", fails)], max_restarts=1):
            await trio.sleep_forever()

    with pytest.raises(RestartIntensityExceeded):
        async with Supervisor(
            [ChildSpec("branch", runs_a_branch)], name="app", events=rec, max_restarts=0
        ):
            await trio.sleep_forever()
    records = [r for r in caplog.records if r.name.startswith("trio_smith.supervisor")]
    assert records
    for record in records:
        assert record.supervisor in ("app", "app/branch")  # type: ignore[attr-defined]
        assert hasattr(record, "reason")
        assert hasattr(record, "correlation_id")
    failed = [r for r in records if r.getMessage() == "child 'f' of supervisor 'branch' failed"]
    assert len(failed) == 2
    first_failure = rec.of(SupervisionEvent.CHILD_FAILED)[0]
    assert failed[0].child_id == "f"  # type: ignore[attr-defined]
    assert failed[0].reason == "failed"  # type: ignore[attr-defined]
    assert failed[0].correlation_id == str(first_failure.correlation_id)  # type: ignore[attr-defined]
    assert failed[0].incarnation == first_failure.payload["incarnation"]  # type: ignore[attr-defined]
    restarting = [r for r in records if r.getMessage().startswith("restarting child 'f'")]
    assert restarting
    assert restarting[0].child_id == "f"  # type: ignore[attr-defined]
    gave_up = [r for r in records if "gave up" in r.getMessage()]
    assert {r.supervisor for r in gave_up} == {"app/branch", "app"}  # type: ignore[attr-defined]
    assert {r.reason for r in gave_up} == {"intensity"}  # type: ignore[attr-defined]


async def test_a_bad_report_limit_is_refused_at_construction() -> None:
    with pytest.raises(TypeError) as caught:
        Supervisor([], report_limit=10)  # type: ignore[arg-type]
    assert str(caught.value) == "report_limit must be a ReportLimit or None, got 10"
