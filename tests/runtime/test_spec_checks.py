"""A child's function is checked where its spec is built (docs/design.md rule 41).

A plain function, a lambda, a generator or an async generator function given
as a child used to be started, "crash" at once (its result is not a
coroutine) and be restarted until the restart intensity gave up with
``RestartIntensityExceeded``. ``ChildSpec`` refuses them with a TypeError
naming the function; every legitimate shape of async function still runs.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import trio.testing

from trio_smith import Backoff, ChildSpec, DynamicSupervisor, Heartbeat, Restart, Supervisor

Clock = trio.testing.MockClock


def sync_worker() -> None:
    pass  # pragma: no cover


async def ticker() -> AsyncIterator[int]:
    yield 1  # pragma: no cover


def numbers() -> Iterator[int]:
    yield 1  # pragma: no cover


async def async_worker() -> None:
    pass  # pragma: no cover


class SyncCallable:
    def __call__(self) -> None:
        pass  # pragma: no cover

    def run(self) -> None:
        pass  # pragma: no cover


def coroutine_object() -> Any:
    return async_worker()


#: (what is passed as fn, the exact message of the TypeError).
REFUSED: list[tuple[Callable[[], object], str]] = [
    (
        lambda: sync_worker,
        "fn must be an async function, got the plain function 'sync_worker' "
        "(define it with async def)",
    ),
    (
        lambda: ticker,
        "fn must be an async function, got the async generator function 'ticker' "
        "(a body with yield makes an async generator, not a coroutine)",
    ),
    (lambda: numbers, "fn must be an async function, got the generator function 'numbers'"),
    (
        lambda: functools.partial(sync_worker),
        "fn must be an async function, got functools.partial of the plain function "
        "'sync_worker' (define it with async def)",
    ),
    (
        lambda: SyncCallable().run,
        "fn must be an async function, got the plain method 'SyncCallable.run' "
        "(define it with async def)",
    ),
    (
        lambda: SyncCallable(),
        "fn must be an async function, got an instance of 'SyncCallable' whose "
        "__call__ is not async",
    ),
    (
        lambda: SyncCallable,
        "fn must be an async function, got the class 'SyncCallable' (calling it "
        "builds an instance)",
    ),
    (lambda: print, "fn must be an async function, got the built-in function 'print'"),
    (
        lambda: coroutine_object(),
        "fn must be an async function, got the coroutine object 'async_worker' (pass "
        "the function itself, not the result of calling it)",
    ),
    (lambda: "worker", "fn must be an async function, got 'worker'"),
    (lambda: None, "fn must be an async function, got None"),
]


@pytest.mark.parametrize(("make", "message"), REFUSED)
@pytest.mark.filterwarnings("error::RuntimeWarning")  # a coroutine object is closed
def test_a_child_spec_refuses_what_is_not_an_async_function(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        ChildSpec("w", make())  # type: ignore[arg-type]


def test_a_lambda_is_refused_with_a_way_out() -> None:
    # trio would run a lambda that returns a coroutine, but a lambda cannot
    # be async, takes no task_status, and hides a sync body as well.
    with pytest.raises(TypeError) as info:
        ChildSpec("w", lambda: async_worker())
    assert str(info.value) == (
        "fn must be an async function, got the lambda "
        "'test_a_lambda_is_refused_with_a_way_out.<locals>.<lambda>' (a lambda cannot be "
        "async: pass the async function itself, and its arguments)"
    )


def test_a_pool_template_is_checked_as_a_child_spec() -> None:
    # DynamicSupervisor's template is a ChildSpec: refused before any pool exists.
    with pytest.raises(TypeError, match=r"^fn must be an async function, got the plain"):
        DynamicSupervisor(ChildSpec("w", sync_worker))  # type: ignore[arg-type]


async def test_every_shape_of_async_function_runs_as_a_child(autojump_clock: Clock) -> None:
    ran: list[str] = []

    async def plain(label: str) -> None:
        ran.append(label)

    class Worker:
        async def __call__(self, label: str) -> None:
            ran.append(label)

        async def run(self, label: str) -> None:
            ran.append(label)

        @staticmethod
        async def static(label: str) -> None:
            ran.append(label)

    def traced(fn: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
        # A sync wrapper that returns the coroutine, as many decorators are.
        @functools.wraps(fn)
        def wrapper(label: str) -> Awaitable[None]:
            return fn(label)

        return wrapper

    @traced
    async def decorated(label: str) -> None:
        ran.append(label)

    async def keyworded(*, label: str) -> None:
        ran.append(label)

    shapes: list[tuple[str, Callable[..., Awaitable[object]], tuple[object, ...]]] = [
        ("async def", plain, ("async def",)),
        ("instance", Worker(), ("instance",)),
        ("bound method", Worker().run, ("bound method",)),
        ("static method", Worker.static, ("static method",)),
        ("partial", functools.partial(plain, "partial"), ()),
        ("nested partial", functools.partial(functools.partial(keyworded), label="nested"), ()),
        ("functools.wraps", decorated, ("functools.wraps",)),
    ]
    specs = [ChildSpec(name, fn, args, restart=Restart.TEMPORARY) for name, fn, args in shapes]
    async with Supervisor(specs) as sup:
        await trio.sleep(1)
        await sup.shutdown()
    expected = ["async def", "instance", "bound method", "static method", "partial", "nested"]
    assert sorted(ran) == sorted([*expected, "functools.wraps"])


async def test_a_pool_takes_an_instance_with_an_async_call(autojump_clock: Clock) -> None:
    seen: list[int] = []

    class Handler:
        async def __call__(self, n: int) -> None:
            seen.append(n)
            await trio.sleep_forever()

    async with DynamicSupervisor(ChildSpec("h", Handler())) as pool:
        await pool.start_child(1)
        await pool.start_child(2)
        await trio.sleep(1)
        assert seen == [1, 2]
        await pool.shutdown()


# ---------------------------------------------------------------- numbers


async def _child() -> None:
    pass  # pragma: no cover


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Heartbeat(math.nan), "interval must be a finite number >= 0.001, got nan"),
        (lambda: Heartbeat(-1.0), "interval must be a finite number >= 0.001, got -1.0"),
        (
            lambda: Heartbeat(1.0, threshold=math.inf),
            "threshold must be a finite number > 0, got inf",
        ),
        (
            lambda: Heartbeat(1.0, acceptable_pause=math.nan),
            "acceptable_pause must be a finite number >= 0, got nan",
        ),
        (
            lambda: Heartbeat(1.0, min_std_deviation=math.inf),
            "min_std_deviation must be a finite number >= 0.001, got inf",
        ),
        (lambda: Backoff(initial=math.nan), "initial must be a finite number > 0, got nan"),
        (
            lambda: Backoff(maximum=math.inf),
            "maximum must be a finite number >= initial (0.1), got inf",
        ),
        (lambda: Backoff(jitter=math.nan), "jitter must be a number between 0 and 1, got nan"),
        (
            lambda: Backoff(reset_after=math.inf),
            "reset_after must be a finite number > 0, got inf",
        ),
        (
            lambda: ChildSpec("w", _child, shutdown=math.nan),
            "shutdown must be None or a number of seconds >= 0 (math.inf: wait for ever), got nan",
        ),
    ],
)
def test_nan_and_infinity_are_refused_where_a_finite_number_is_meant(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build()
