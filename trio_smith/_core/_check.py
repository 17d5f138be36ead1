"""Argument checks shared by every constructor at the API boundary.

Each takes ``object`` on purpose: callers pass values whose annotated type
the user may not have respected, and the message names the argument. It
lives in ``_core`` (pure, stdlib only) so that the core and every shell use
the same checks and the same messages.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import math
import types
from typing import Final

__all__ = [
    "async_problem",
    "check_text",
    "exception_types",
    "finite_at_least",
    "int_at_least",
    "is_finite_number",
    "is_int",
    "is_number",
    "non_empty_str",
    "optional_callable",
    "optional_name",
    "optional_str",
    "unicode_problem",
]


_CO_COROUTINE: Final = inspect.CO_COROUTINE
_CO_GENERATOR: Final = inspect.CO_GENERATOR
_CO_ASYNC_GENERATOR: Final = inspect.CO_ASYNC_GENERATOR
#: Layers of wrapping followed (partials, ``__wrapped__``): a bound on a
#: cycle or an endless chain (inspect.unwrap's guard, made cheap).
_MAX_LAYERS: Final = 100


def _is_coroutine_function(fn: object) -> bool:
    """Whether calling ``fn`` itself, as it is, certainly returns a coroutine."""
    if inspect.iscoroutinefunction(fn):
        # async def, a method or a functools.partial of one (inspect looks
        # through both), or one marked as such (Python 3.12's marker).
        return True
    flags = getattr(getattr(fn, "__code__", None), "co_flags", None)
    if isinstance(flags, int) and flags & _CO_COROUTINE and not isinstance(fn, type):
        return True  # a callable that says so: unittest.mock.AsyncMock
    # An object whose class's __call__ is an async def.
    # Looked up on the class, as a call does: not a callable() test.
    call = getattr(type(fn), "__call__", None)  # noqa: B004
    return not isinstance(fn, type) and inspect.iscoroutinefunction(call)


def _describe_sync(fn: object, prefix: str) -> str | None:
    """What ``fn`` is when it is sure not to return a coroutine; None if unsure."""
    kind = "function"
    if inspect.ismethod(fn):
        fn, kind = fn.__func__, "method"
    if isinstance(fn, types.FunctionType):
        name = fn.__qualname__
        flags = fn.__code__.co_flags
        if flags & _CO_ASYNC_GENERATOR:
            return (
                f"{prefix}the async generator {kind} {name!r} (a body with yield "
                "makes an async generator, not a coroutine)"
            )
        if flags & _CO_GENERATOR:
            return f"{prefix}the generator {kind} {name!r}"
        if fn.__name__ == "<lambda>":
            return (
                f"{prefix}the lambda {name!r} (a lambda cannot be async: pass the "
                "async function itself, and its arguments)"
            )
        return f"{prefix}the plain {kind} {name!r} (define it with async def)"
    if isinstance(fn, types.BuiltinFunctionType):
        return f"{prefix}the built-in function {fn.__qualname__!r}"
    if isinstance(fn, type):
        if issubclass(fn, collections.abc.Coroutine):
            return None  # its instances are coroutines
        return f"{prefix}the class {fn.__qualname__!r} (calling it builds an instance)"
    call = getattr(type(fn), "__call__", None)  # noqa: B004
    if isinstance(call, types.FunctionType):
        how = "an async generator" if call.__code__.co_flags & _CO_ASYNC_GENERATOR else "not async"
        return f"{prefix}an instance of {type(fn).__qualname__!r} whose __call__ is {how}"
    # A callable implemented in C (a Cython coroutine function, a C type):
    # only calling it could tell, so it is given the benefit of the doubt.
    return None


def async_problem(fn: object) -> str | None:
    """Why calling ``fn`` cannot return a coroutine, described; None if it can.

    Accepted (None): an ``async def`` function, a bound method of one, a
    ``functools.partial`` of any of these, an object whose class's
    ``__call__`` is ``async def``, a function that wraps one of these
    (``functools.wraps`` sets ``__wrapped__``; the wrapper itself may be
    sync and return the coroutine), an ``AsyncMock``, a class whose
    instances are coroutines, and any callable implemented in C (only a
    call could tell). Refused: anything not callable, and plain, generator
    and async generator functions (lambdas included), methods of them,
    built-in functions, other classes, and objects whose ``__call__`` is
    a plain method, alone or in partials. trio itself accepts any callable
    that returns a coroutine and can only tell after calling it; a child or
    a decorated function must be told at once (docs/design.md rule 41).

    A coroutine object (``fn()`` passed instead of ``fn``) is closed, as trio
    closes it, so that it raises no "never awaited" warning besides the
    error.

    Returns:
        None, or the description that follows "got" in the caller's
        TypeError: ``the plain function 'work' (define it with async def)``.
    """
    # The common cases, an async def or a bound method of one, cheaply.
    if type(fn) is types.FunctionType and fn.__code__.co_flags & _CO_COROUTINE:
        return None
    if type(fn) is types.MethodType:
        func = fn.__func__
        if type(func) is types.FunctionType and func.__code__.co_flags & _CO_COROUTINE:
            return None
    if not callable(fn):
        if isinstance(fn, collections.abc.Coroutine):
            name = getattr(fn, "__qualname__", type(fn).__qualname__)
            fn.close()
            return (
                f"the coroutine object {name!r} (pass the function itself, "
                "not the result of calling it)"
            )
        return repr(fn)
    # Partials are looked through, and named, up to the thing they call;
    # from there, a __wrapped__ chain (functools.wraps) may reach an async def.
    prefix = ""
    layer: object = fn
    described: object = None
    for _ in range(_MAX_LAYERS):
        if _is_coroutine_function(layer):
            return None
        if isinstance(layer, functools.partial):
            if described is None:
                prefix += "functools.partial of "
            layer = layer.func
            continue
        if described is None:
            described = layer
        wrapped = getattr(layer, "__wrapped__", None)
        if wrapped is None or not callable(wrapped):
            break
        layer = wrapped
    return _describe_sync(layer if described is None else described, prefix)


def exception_types(label: str, value: object) -> tuple[type[Exception], ...]:
    """``value`` as a tuple of Exception classes (a single class is taken as one).

    Raises:
        TypeError: it is not a class or tuple of ``Exception`` subclasses, naming ``label``.
    """
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, tuple) or not all(
        isinstance(t, type) and issubclass(t, Exception) for t in value
    ):
        raise TypeError(f"{label} must be a tuple of Exception subclasses, got {value!r}")
    return value


def optional_callable(label: str, value: object) -> None:
    """Check that ``value`` is a callable or None.

    Raises:
        TypeError: it is neither, naming ``label``.
    """
    if value is not None and not callable(value):
        raise TypeError(f"{label} must be a callable or None, got {value!r}")


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An int or a float (infinite or NaN included) that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """A finite int or float that is not a bool; an int too large for a float is not.

    Every such number is used as seconds beside floats (trio's clock), where
    an int beyond float's range would raise OverflowError later, far from
    the argument that brought it.
    """
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond float's range
        return False


def int_at_least(label: str, value: object, minimum: int, *, optional: bool = False) -> None:
    """Refuse anything but an int >= ``minimum`` (or None if ``optional``)."""
    if optional and value is None:
        return
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        alternative = " or None" if optional else ""
        raise ValueError(f"{label} must be an int >= {minimum}{alternative}, got {value!r}")


def finite_at_least(label: str, value: object, minimum: float, *, strict: bool = False) -> None:
    """Refuse anything but a finite number >= ``minimum`` (> if ``strict``)."""
    if not is_finite_number(value) or (
        value <= minimum if strict else value < minimum  # type: ignore[operator]
    ):
        relation = ">" if strict else ">="
        raise ValueError(f"{label} must be a finite number {relation} {minimum}, got {value!r}")


def unicode_problem(value: str) -> str | None:
    """Why UTF-8 cannot encode ``value`` (its first lone surrogate), or None.

    A Python str may hold surrogate code points (U+D800 to U+DFFF, e.g. from
    ``surrogateescape``); UTF-8 has no encoding for them, so a store could
    not write such text. ASCII text, the common case, costs one ``isascii()``.
    """
    # Unbound methods: a str subclass may override isascii or encode.
    if str.isascii(value):
        return None
    try:
        str.encode(value, "utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate U+{ord(value[exc.start]):04X} at index {exc.start}"
    return None


def check_text(label: str, value: str) -> str:
    """``value`` if UTF-8 can encode it, else ValueError naming ``label``."""
    problem = unicode_problem(value)
    if problem is not None:
        raise ValueError(f"{label} must be valid Unicode text, got {value!r} ({problem})")
    return value


def non_empty_str(label: str, value: object) -> str:
    """``value`` if it is a non-empty str of valid text, else ValueError naming ``label``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{label} must be a non-empty str, got {value!r}")
    if not value.isascii():  # ASCII never holds a surrogate: skip the call
        check_text(label, value)
    return value


def optional_str(label: str, value: object) -> str | None:
    """None or a non-empty str of valid text, else ValueError naming ``label``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{label} must be a non-empty str or None, got {value!r}")
    if not value.isascii():
        check_text(label, value)
    return value


def optional_name(value: object) -> str | None:
    """A ``name=`` argument: None or a non-empty str."""
    return optional_str("name", value)
