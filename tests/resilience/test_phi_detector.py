"""``PhiAccrualFailureDetector``: Akka's detector and registry on trio's clock.

Hand-computed values: Akka's formula, docs/design.md A6 (steady 1 s
heartbeats, min std 100 ms, pause 3 s: phi crosses 8 at 4522.60 ms, so a
node is unavailable from +4.523 s; one heartbeat alone: mean 1 s, sd 250 ms,
unavailable from +5.307 s). Akka's ``AccrualFailureDetectorSpec`` and
``DefaultFailureDetectorRegistrySpec`` cases are ported with the MockClock
(``autojump_clock``): no real sleeping.
"""

from __future__ import annotations

import logging
import math

import pytest
import trio
import trio.testing
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trio_smith._core._phi import PhiConfig, PhiState
from trio_smith.resilience import (
    PhiAccrualFailureDetector,
    PhiDetectorStatistics,
    PhiNodeStatistics,
)

STEADY_MS = 4523
FIRST_MS = 5307


async def at(ms: int) -> None:
    """Sleep until ``ms`` milliseconds of (mock) time."""
    await trio.sleep_until(ms / 1000)


class Calls:
    """Records the callbacks, with the (mock) time of each."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object, float]] = []
        self.phis: list[float] = []

    def unreachable(self, node: object, phi: float) -> None:
        self.seen.append(("unreachable", node, trio.current_time()))
        self.phis.append(phi)

    def reachable(self, node: object) -> None:
        self.seen.append(("reachable", node, trio.current_time()))


def detector(calls: Calls | None = None, **kwargs: float) -> PhiAccrualFailureDetector[str]:
    if calls is None:
        return PhiAccrualFailureDetector(**kwargs)  # type: ignore[arg-type]
    return PhiAccrualFailureDetector(
        on_unreachable=calls.unreachable,
        on_reachable=calls.reachable,
        **kwargs,  # type: ignore[arg-type]
    )


async def steady(fd: PhiAccrualFailureDetector[str], node: str, first_ms: int, count: int) -> int:
    """Heartbeat every second from ``first_ms``; return the last heartbeat's ms."""
    t = first_ms
    for _ in range(count):
        await at(t)
        fd.heartbeat(node)
        t += 1000
    return t - 1000


# ---------------------------------------------------------------- construction


def test_defaults_are_akkas() -> None:
    fd: PhiAccrualFailureDetector[str] = PhiAccrualFailureDetector()
    assert (fd.threshold, fd.max_sample_size, fd.min_std_deviation) == (8.0, 1000, 0.1)
    assert (fd.acceptable_heartbeat_pause, fd.first_heartbeat_estimate) == (3.0, 1.0)
    assert fd.expected_response_after == 1.0
    assert repr(fd) == "<PhiAccrualFailureDetector threshold=8.0 nodes=0 watching=False>"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(threshold=-1.0), ValueError, r"^threshold must be a finite number > 0, got -1\.0$"),
        (dict(max_sample_size=0), ValueError, r"^max_sample_size must be an int >= 1, got 0$"),
        (
            dict(min_std_deviation=0.0),
            ValueError,
            r"^min_std_deviation must be a finite number >= 0\.001, got 0\.0$",
        ),
        (
            dict(acceptable_heartbeat_pause=-3),
            ValueError,
            r"^acceptable_heartbeat_pause must be a finite number >= 0, got -3$",
        ),
        (
            dict(first_heartbeat_estimate=math.nan),
            ValueError,
            r"^first_heartbeat_estimate must be a finite number >= 0\.001, got nan$",
        ),
        (
            dict(expected_response_after=-1),
            ValueError,
            r"^expected_response_after must be a finite number >= 0, got -1$",
        ),
        (dict(on_unreachable=1), TypeError, r"^on_unreachable must be callable or None, got 1$"),
        (dict(on_reachable="x"), TypeError, r"^on_reachable must be callable or None, got 'x'$"),
    ],
)
def test_validation_messages(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        PhiAccrualFailureDetector(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- queries


async def test_an_unknown_node_is_available_and_not_monitored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Akka: "return phi value of 0.0 on startup for each address, when no heartbeats".
    fd = detector()
    await trio.sleep(100)
    for node in ("a", "b"):
        assert fd.phi(node) == 0.0
        assert fd.is_available(node)
        assert not fd.is_monitoring(node)
        assert fd.suspect_at(node) is None
        assert fd.node_statistics(node) is None
    assert fd.nodes() == []


async def test_phi_after_steady_heartbeats_matches_the_reference_point(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fd = detector()
    last = await steady(fd, "a", 0, 20)
    assert fd.is_monitoring("a")
    assert fd.suspect_at("a") == (last + STEADY_MS) / 1000
    await at(last + 4500)
    assert fd.phi("a") == pytest.approx(7.2999, abs=1e-4)
    await at(last + STEADY_MS - 1)
    assert fd.is_available("a")
    await at(last + STEADY_MS)
    assert not fd.is_available("a")
    await at(last + 4600)
    assert fd.phi("a") == pytest.approx(10.7826, abs=1e-4)


async def test_a_node_is_dead_when_heartbeats_are_missed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Akka: "mark node as dead if heartbeat are missed" (threshold 3, no pause).
    fd = detector(threshold=3, acceptable_heartbeat_pause=0)
    for ms in (0, 1000, 1100):
        await at(ms)
        fd.heartbeat("a")
    await at(1200)
    assert fd.is_available("a")
    await at(8200)
    assert not fd.is_available("a")


async def test_a_node_is_available_again_when_it_heartbeats_after_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Akka: "mark node as available if it starts heartbeat again after being
    # marked dead due to detection of failure".
    fd = detector()
    t = await steady(fd, "a", 0, 1000)
    t += 5 * 60 * 1000
    await at(t)
    assert not fd.is_available("a")
    for delta, available in [(100, True), (900, True), (100, True), (7000, False)]:
        fd.heartbeat("a")
        t += delta
        await at(t)
        assert fd.is_available("a") is available
    for delta in (100, 900, 100, 900):
        fd.heartbeat("a")
        t += delta
        await at(t)
        assert fd.is_available("a")


async def test_a_single_heartbeat_bootstraps_from_the_first_estimate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Akka: "return phi based on guess when only one heartbeat" (pause 0).
    fd = detector(acceptable_heartbeat_pause=0)
    fd.heartbeat("a")
    stats = fd.node_statistics("a")
    assert stats is not None
    assert (stats.samples, stats.mean, stats.std_deviation) == (2, 1.0, 0.25)
    await at(1000)
    assert fd.phi("a") == pytest.approx(0.3, abs=0.2)
    await at(2000)
    assert fd.phi("a") == pytest.approx(4.5, abs=0.3)
    await at(3000)
    assert fd.phi("a") > 15.0


async def test_intervals_are_not_recorded_while_the_node_is_unavailable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fd = detector()
    await steady(fd, "a", 0, 3)
    await at(60_000)
    assert not fd.is_available("a")
    fd.heartbeat("a")
    stats = fd.node_statistics("a")
    assert stats is not None
    assert (stats.samples, stats.last_heartbeat) == (4, 60.0)  # bootstrap 2 + 2 intervals


async def test_only_max_sample_size_intervals_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Akka: "use maxSampleSize heartbeats".
    fd = detector(max_sample_size=3, acceptable_heartbeat_pause=0)
    for ms in (0, 100, 200, 300):
        await at(ms)
        fd.heartbeat("a")
    await at(400)
    phi1 = fd.phi("a")
    for ms in (1000, 1500, 2000, 2500):
        await at(ms)
        fd.heartbeat("a")
    await at(3000)
    assert fd.phi("a") == pytest.approx(phi1, abs=0.001)


async def test_a_removed_node_is_available_and_starts_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Akka's registry: "mark node as dead after explicit removal of
    # connection" (then unknown, so available) and "... receiving heartbeat
    # again" (a fresh bootstrap).
    fd = detector()
    await steady(fd, "a", 0, 5)
    fd.remove("a")
    assert fd.is_available("a")
    assert not fd.is_monitoring("a")
    fd.remove("a")  # unknown: ignored
    await at(100_000)
    fd.heartbeat("a")
    stats = fd.node_statistics("a")
    assert stats is not None
    assert stats.samples == 2
    assert fd.suspect_at("a") == (100_000 + FIRST_MS) / 1000


async def test_the_growing_interval_warning_is_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    fd = detector()
    with caplog.at_level(logging.WARNING, logger="trio_smith.resilience"):
        for ms in (0, 1999, 3999):
            await at(ms)
            fd.heartbeat("a")
    assert [r.getMessage() for r in caplog.records] == [
        "heartbeat interval is growing too large for node 'a': 2000 ms"
    ]
    assert caplog.records[0].name == "trio_smith.resilience"


# ---------------------------------------------------------------- expect


async def test_expect_injects_a_first_heartbeat_at_its_instant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fd = detector()
    fd.expect("a")
    assert fd.nodes() == ["a"]
    await at(999)
    assert not fd.is_monitoring("a")
    assert fd.phi("a") == 0.0
    await at(5000)
    # Looked at lazily, long after: the heartbeat is stamped at 1 s.
    assert fd.is_monitoring("a")
    stats = fd.node_statistics("a")
    assert stats is not None
    assert stats.last_heartbeat == 1.0
    assert fd.suspect_at("a") == (1000 + FIRST_MS) / 1000
    await at(1000 + FIRST_MS - 1)
    assert fd.is_available("a")
    await at(1000 + FIRST_MS)
    assert not fd.is_available("a")


async def test_expect_gives_way_to_a_real_heartbeat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fd = detector()
    fd.expect("a")
    await at(500)
    fd.heartbeat("a")
    await at(3000)
    stats = fd.node_statistics("a")
    assert stats is not None
    assert (stats.last_heartbeat, stats.samples) == (0.5, 2)
    fd.expect("a")  # monitored: no effect
    assert fd.suspect_at("a") == (500 + FIRST_MS) / 1000


async def test_a_heartbeat_after_the_expected_instant_follows_the_synthetic_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fd = detector(expected_response_after=2.0)
    fd.expect("a")
    await at(1000)
    fd.expect("a")  # a second call keeps the earlier instant (2 s)
    await at(3000)
    fd.heartbeat("a")
    stats = fd.node_statistics("a")
    assert stats is not None
    # The synthetic heartbeat at 2 s, then a 1 s interval, recorded.
    assert (stats.last_heartbeat, stats.samples, stats.mean) == (3.0, 3, 1.0)


# ---------------------------------------------------------------- notifications


async def test_unreachable_is_notified_once_per_edge_and_reachable_on_the_next_heartbeat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = Calls()
    async with detector(calls) as fd:
        last = await steady(fd, "a", 0, 20)
        await at(last + 60_000)
        assert calls.seen == [("unreachable", "a", (last + STEADY_MS) / 1000)]
        assert calls.phis == [pytest.approx(8.012869649581168, abs=1e-9)]
        fd.heartbeat("a")  # not recorded: the node was unavailable
        assert calls.seen[-1] == ("reachable", "a", (last + 60_000) / 1000)
        await at(last + 200_000)
        assert calls.seen[-1] == ("unreachable", "a", (last + 60_000 + STEADY_MS) / 1000)
        assert len(calls.seen) == 3
        stats = fd.statistics()
        assert stats == PhiDetectorStatistics(
            nodes=1, monitoring=1, unavailable=1, reported_unreachable=1, watching=True
        )
    assert not fd.statistics().watching


async def test_a_node_that_keeps_heartbeating_is_never_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = Calls()
    async with detector(calls) as fd:
        t = 0
        for i in range(3000):
            await at(t)
            fd.heartbeat("a")
            t += (500, 1500, 1000, 2400)[i % 4]
        assert calls.seen == []
        assert fd.is_available("a")


async def test_a_heartbeat_that_moves_the_deadline_earlier_is_honoured(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two 10 ms intervals replace the bootstrap (max_sample_size=2): mean
    # 10 ms, sd at its 10 ms floor, no pause: unavailable 63 ms after the last
    # heartbeat, long before the first deadline (2.307 s).
    calls = Calls()
    fd = detector(calls, acceptable_heartbeat_pause=0, min_std_deviation=0.01, max_sample_size=2)
    async with fd:
        for ms in (0, 10, 20):
            await at(ms)
            fd.heartbeat("a")
        await trio.sleep(10)
    assert calls.seen == [("unreachable", "a", 0.083)]


async def test_expected_nodes_are_reported_when_they_never_speak(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = Calls()
    async with detector(calls) as fd:
        fd.expect("a")
        await at(300)
        fd.expect("b")
        await at(500)
        fd.heartbeat("b")  # b speaks before its expected instant
        await at(20_000)
    assert calls.seen == [
        ("unreachable", "b", (500 + FIRST_MS) / 1000),
        ("unreachable", "a", (1000 + FIRST_MS) / 1000),
    ]


async def test_nodes_known_before_entering_are_watched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = Calls()
    fd = detector(calls)
    fd.heartbeat("a")
    fd.expect("b")
    async with fd:
        await at(20_000)
    assert calls.seen == [
        ("unreachable", "a", FIRST_MS / 1000),
        ("unreachable", "b", (1000 + FIRST_MS) / 1000),
    ]


async def test_removed_and_reset_nodes_are_not_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = Calls()
    async with detector(calls) as fd:
        fd.heartbeat("a")
        fd.heartbeat("b")
        fd.heartbeat("c")
        await at(1000)
        fd.remove("a")
        fd.reset()
        fd.heartbeat("c")  # registered again after the reset
        await at(20_000)
        assert fd.nodes() == ["c"]
    assert calls.seen == [("unreachable", "c", (1000 + FIRST_MS) / 1000)]


async def test_a_raising_callback_is_logged_and_the_watcher_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def boom(node: str, phi: float) -> None:
        seen.append(node)
        raise RuntimeError(f"cannot handle {node}")

    def boom_again(node: str) -> None:
        raise RuntimeError("nope")

    fd = PhiAccrualFailureDetector(on_unreachable=boom, on_reachable=boom_again)
    with caplog.at_level(logging.ERROR, logger="trio_smith.resilience"):
        async with fd:
            fd.heartbeat("a")
            await at(1)
            fd.heartbeat("b")
            await at(20_000)
            fd.heartbeat("a")
    assert seen == ["a", "b"]
    assert [r.getMessage() for r in caplog.records] == [
        "on_unreachable callback raised for node 'a'",
        "on_unreachable callback raised for node 'b'",
        "on_reachable callback raised for node 'a'",
    ]
    assert all(r.exc_info is not None for r in caplog.records)


async def test_the_watcher_cannot_run_twice_at_once_but_can_run_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = Calls()
    fd = detector(calls)
    async with fd:
        with pytest.raises(
            RuntimeError, match=r"^this failure detector's watcher is already running$"
        ):
            await fd.__aenter__()
        fd.heartbeat("a")
    await at(10_000)
    assert calls.seen == []  # no watcher: no notification
    assert not fd.is_available("a")
    async with fd:
        fd.heartbeat("a")  # not reported, so no on_reachable
        await at(20_000)
    assert calls.seen == [("unreachable", "a", (10_000 + FIRST_MS) / 1000)]


async def test_node_statistics_snapshot(autojump_clock: trio.testing.MockClock) -> None:
    fd: PhiAccrualFailureDetector[tuple[str, int]] = PhiAccrualFailureDetector()
    node = ("10.0.0.1", 2552)
    fd.heartbeat(node)
    await at(5000)
    assert fd.node_statistics(node) == PhiNodeStatistics(
        node=node,
        phi=pytest.approx(4.736694582705181, abs=1e-12),  # type: ignore[arg-type]
        available=True,
        monitoring=True,
        reported_unreachable=False,
        last_heartbeat=0.0,
        samples=2,
        mean=1.0,
        std_deviation=0.25,
        suspect_at=FIRST_MS / 1000,
    )
    assert fd.statistics() == PhiDetectorStatistics(
        nodes=1, monitoring=1, unavailable=0, reported_unreachable=0, watching=False
    )


# ---------------------------------------------------------------- against the machine


@settings(max_examples=40, deadline=None)
@given(
    schedules=st.lists(
        st.lists(st.integers(1, 9000), min_size=1, max_size=12), min_size=1, max_size=3
    ),
    threshold=st.floats(1.0, 12.0),
)
def test_notifications_come_exactly_when_the_machine_says(
    schedules: list[list[int]], threshold: float
) -> None:
    # Expected edges from PhiState alone: after each heartbeat, the node is
    # reported at suspect_at() if the next heartbeat comes later; a heartbeat
    # after a report makes it reachable again.
    cfg = PhiConfig(threshold=threshold)
    expected: list[tuple[str, str, int]] = []
    times: dict[str, list[int]] = {}
    for index, gaps in enumerate(schedules):
        node = f"n{index}"
        state = PhiState(cfg)
        t = index * 7  # distinct start times
        beats = []
        reported = False
        for gap in [*gaps, None]:
            beats.append(t)
            state.heartbeat(t)
            if reported and state.is_available(t):
                expected.append(("reachable", node, t))
                reported = False
            due = state.suspect_at()
            assert due is not None
            if gap is not None:
                assume(due != t + gap)  # a tie's order is the scheduler's
            if not reported and (gap is None or due < t + gap):
                expected.append(("unreachable", node, due))
                reported = True
            if gap is not None:
                t += gap
        times[node] = beats
    end = max(e[2] for e in expected) + 1000

    seen: list[tuple[str, str, int]] = []

    async def main() -> None:
        fd: PhiAccrualFailureDetector[str] = PhiAccrualFailureDetector(
            threshold=threshold,
            on_unreachable=lambda n, phi: seen.append(("unreachable", n, ms())),
            on_reachable=lambda n: seen.append(("reachable", n, ms())),
        )

        async def node_task(node: str, beats: list[int]) -> None:
            for t in beats:
                await at(t)
                fd.heartbeat(node)

        async with fd, trio.open_nursery() as nursery:
            for node, beats in times.items():
                nursery.start_soon(node_task, node, beats)
            await at(end)

    def ms() -> int:
        return round(trio.current_time() * 1000)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert sorted(seen, key=lambda e: (e[2], e[1])) == sorted(expected, key=lambda e: (e[2], e[1]))
