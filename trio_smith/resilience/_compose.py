"""Composition: the five resilience components around one call, in resilience4j's order.

The order is resilience4j's default aspect order (docs/design.md rule 52):

    Retry( CircuitBreaker( RateLimiter( TimeLimiter( Bulkhead( call ) ) ) ) )

so each layer sees what the layers inside it raise: the breaker records a
timeout, a full bulkhead and a refused rate-limiter permit as failures, and
Retry retries every one of them, ``CallNotPermitted`` included, unless told
to ignore it. ``trio.Cancelled`` passes every layer unchanged.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, final

from ._breaker import CircuitBreaker
from ._bulkhead import Bulkhead
from ._decorate import through
from ._rate_limiter import RateLimiter
from ._retry import Retry
from ._time_limiter import TimeLimiter

__all__ = ["Composition", "compose"]

P = ParamSpec("P")
T = TypeVar("T")

#: The layers' argument names and classes, outermost first.
_LAYERS: Final = (
    ("retry", Retry),
    ("circuit_breaker", CircuitBreaker),
    ("rate_limiter", RateLimiter),
    ("time_limiter", TimeLimiter),
    ("bulkhead", Bulkhead),
)

#: Per task: the exit stacks of the ``async with composition:`` blocks it is
#: inside, innermost last (a contextvar: many tasks may share a composition).
_ENTRIES: Final[contextvars.ContextVar[tuple[AsyncExitStack, ...]]] = contextvars.ContextVar(
    "trio_smith.composition_entries", default=()
)


@final
class Composition:
    """Resilience components applied around a call in resilience4j's order.

    Build one with :func:`compose`. Use it as ``await composition.call(fn,
    *args)``, as a decorator (``@composition``), or, without a Retry, as
    ``async with composition:``.

    Each component keeps its own state, statistics and events: a composition
    only nests them. The same component may also be used alone or in other
    compositions (a breaker shared by several endpoints, say).
    """

    def __init__(
        self,
        *,
        retry: Retry | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        rate_limiter: RateLimiter | None = None,
        time_limiter: TimeLimiter | None = None,
        bulkhead: Bulkhead | None = None,
    ) -> None:
        given = {
            "retry": retry,
            "circuit_breaker": circuit_breaker,
            "rate_limiter": rate_limiter,
            "time_limiter": time_limiter,
            "bulkhead": bulkhead,
        }
        for label, kind in _LAYERS:
            value = given[label]
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{label} must be a {kind.__name__} or None, got {value!r}")
        layers: list[Any] = [given[label] for label, _ in _LAYERS if given[label] is not None]
        if not layers:
            raise ValueError(
                "compose needs at least one of retry, circuit_breaker, rate_limiter, "
                "time_limiter, bulkhead"
            )
        self._retry = retry
        self._circuit_breaker = circuit_breaker
        self._rate_limiter = rate_limiter
        self._time_limiter = time_limiter
        self._bulkhead = bulkhead
        #: Outermost first; the ones ``async with`` enters (all but a Retry).
        self._layers: tuple[Any, ...] = tuple(layers)
        self._blocks: tuple[Any, ...] = tuple(layer for layer in layers if layer is not retry)
        #: ``call`` of each layer, innermost first, all but the outermost.
        self._inner_calls: tuple[Callable[..., Awaitable[Any]], ...] = tuple(
            layer.call for layer in reversed(layers[1:])
        )
        self._outer_call: Callable[..., Awaitable[Any]] = layers[0].call

    @property
    def retry(self) -> Retry | None:
        """The Retry, outermost, if any."""
        return self._retry

    @property
    def circuit_breaker(self) -> CircuitBreaker | None:
        """The circuit breaker, inside the Retry, if any."""
        return self._circuit_breaker

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The rate limiter, inside the breaker, if any."""
        return self._rate_limiter

    @property
    def time_limiter(self) -> TimeLimiter | None:
        """The time limiter, inside the rate limiter, if any."""
        return self._time_limiter

    @property
    def bulkhead(self) -> Bulkhead | None:
        """The bulkhead, innermost, if any."""
        return self._bulkhead

    def __repr__(self) -> str:
        names = ", ".join(f"{type(layer).__name__}({layer.name!r})" for layer in self._layers)
        return f"Composition({names})"

    async def call(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``await fn(*args)`` through every component, outermost first.

        A Retry re-runs everything inside it on each attempt: each attempt
        is one breaker call, takes one rate-limiter permit, has its own
        deadline and its own bulkhead permit.

        Args:
            fn: an async callable.
            *args: its positional arguments (``functools.partial`` for keywords).

        Returns:
            What ``fn`` returned.

        Raises:
            CallNotPermitted: the breaker rejected the (last) attempt.
            RequestNotPermitted: the rate limiter refused it.
            CallTimedOut: the time limiter's deadline passed.
            BulkheadFull: the bulkhead had no permit within its wait.
            MaxRetriesExceeded: the Retry ran out of attempts on results and
                was told to raise.
            Exception: whatever ``fn`` raised.
        """
        run: Callable[[], Awaitable[Any]] = functools.partial(fn, *args) if args else fn
        for layer_call in self._inner_calls:
            run = functools.partial(layer_call, run)
        result: T = await self._outer_call(run)
        return result

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so that every call goes through :meth:`call`.

        Args:
            fn: an async function.

        Returns:
            An async function with the same signature.

        Raises:
            TypeError: ``fn`` is not an async function, naming it.
        """
        return through(self.call, fn, "composition")

    async def __aenter__(self) -> Composition:
        if self._retry is not None:
            raise TypeError(
                f"a composition with a Retry cannot guard a block (retry {self._retry.name!r} "
                "would have to run it again): use call() or the decorator"
            )
        stack = AsyncExitStack()
        # Entered outermost first; a layer that refuses (a rejection, a full
        # bulkhead) is an exception inside the layers already entered, which
        # see it as they would in call(): the breaker records it.
        await stack.__aenter__()
        try:
            for layer in self._blocks:
                await stack.enter_async_context(layer)
        except BaseException as error:
            if not await stack.__aexit__(type(error), error, error.__traceback__):
                raise
            raise AssertionError("no layer suppresses an exception") from error  # pragma: no cover
        _ENTRIES.set((*_ENTRIES.get(), stack))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        entries = _ENTRIES.get()
        # Invariant: blocks nest per task, so the innermost entry is ours.
        assert entries
        _ENTRIES.set(entries[:-1])
        return bool(await entries[-1].__aexit__(exc_type, exc, tb))


def compose(
    *,
    retry: Retry | None = None,
    circuit_breaker: CircuitBreaker | None = None,
    rate_limiter: RateLimiter | None = None,
    time_limiter: TimeLimiter | None = None,
    bulkhead: Bulkhead | None = None,
) -> Composition:
    """Compose resilience components in resilience4j's order (docs/design.md rule 52).

    ``Retry(CircuitBreaker(RateLimiter(TimeLimiter(Bulkhead(call)))))``: give
    any of them, at least one.

    Args:
        retry: outermost: retries what the layers inside raise.
        circuit_breaker: records each attempt's outcome; rejects when open.
        rate_limiter: one permit per attempt the breaker admits.
        time_limiter: a deadline over the bulkhead's wait and the call.
        bulkhead: innermost: a permit while the call runs.

    Returns:
        A :class:`Composition`: ``await c.call(fn, *args)``, ``@c``, and,
        without a Retry, ``async with c:``.

    Raises:
        TypeError: an argument is not the component its name says, naming it.
        ValueError: none was given.
    """
    return Composition(
        retry=retry,
        circuit_breaker=circuit_breaker,
        rate_limiter=rate_limiter,
        time_limiter=time_limiter,
        bulkhead=bulkhead,
    )
