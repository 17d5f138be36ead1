"""The one decorator of the resilience components: ``@component`` over an async function.

Every component (breaker, time limiter, bulkhead, rate limiter, composition)
decorates the same way: the function is checked to be async where it is
decorated (docs/design.md rule 41), and each call goes through the
component's ``call``, keywords folded in with ``functools.partial``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from .._core._check import async_problem

__all__ = ["check_async", "through"]

P = ParamSpec("P")
T = TypeVar("T")


def check_async(fn: object, component: str) -> None:
    """Refuse what is not an async function, naming it.

    Raises:
        TypeError: ``a <component> decorates an async function, got ...``.
    """
    problem = async_problem(fn)
    if problem is not None:
        raise TypeError(f"a {component} decorates an async function, got {problem}")


def through(
    call: Callable[..., Awaitable[Any]], fn: Callable[P, Awaitable[T]], component: str
) -> Callable[P, Awaitable[T]]:
    """``fn``, each call of which runs as ``await call(fn, *args)``.

    Args:
        call: the component's ``call(fn, *args)``.
        fn: the async function to decorate.
        component: names the component in the error.

    Returns:
        An async function with ``fn``'s signature (``functools.wraps``).

    Raises:
        TypeError: ``fn`` is not an async function.
    """
    check_async(fn, component)

    @functools.wraps(fn)
    async def protected(*args: P.args, **kwargs: P.kwargs) -> T:
        if kwargs:
            result: T = await call(functools.partial(fn, *args, **kwargs))
        else:
            result = await call(fn, *args)
        return result

    return protected
