"""The argument checks shared at the API boundary: names must be storable text."""

from __future__ import annotations

import collections.abc
import functools
import operator
import re
import unittest.mock
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_smith._core._check import (
    async_problem,
    check_text,
    finite_at_least,
    is_finite_number,
    non_empty_str,
    optional_str,
    unicode_problem,
)

#: Every code point, surrogates included (st.text() alone never draws them).
ANY_TEXT = st.text(st.characters(exclude_categories=()))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("\ud800", "a lone surrogate U+D800 at index 0"),
        ("a\udfff", "a lone surrogate U+DFFF at index 1"),
        ("é\udc80x\ud800", "a lone surrogate U+DC80 at index 1"),
        # A pair of surrogates is two code points, which UTF-8 cannot encode either.
        ("ok \ud83d\ude00", "a lone surrogate U+D83D at index 3"),
    ],
)
def test_unicode_problem_names_the_first_lone_surrogate_and_its_index(
    value: str, problem: str
) -> None:
    assert unicode_problem(value) == problem


@pytest.mark.parametrize("value", ["", "ascii", "é☃", "\U0001f600 emoji", "\x00\x7f", "\uffff"])
def test_unicode_problem_accepts_text_utf8_can_encode(value: str) -> None:
    assert unicode_problem(value) is None


def test_unicode_problem_ignores_a_str_subclass_that_lies_about_itself() -> None:
    class Liar(str):
        def isascii(self) -> bool:
            return True

        def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
            return b""

    assert unicode_problem(Liar("a\ud800")) == "a lone surrogate U+D800 at index 1"


@given(ANY_TEXT)
def test_unicode_problem_is_none_exactly_when_utf8_can_encode_the_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        assert unicode_problem(text) is not None
    else:
        assert unicode_problem(text) is None


def test_check_text_returns_valid_text_and_refuses_a_lone_surrogate() -> None:
    assert check_text("label", "é☃") == "é☃"
    message = (
        "label must be valid Unicode text, got 'a\\ud800' (a lone surrogate U+D800 at index 1)"
    )
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        check_text("label", "a\ud800")


@pytest.mark.parametrize("value", ["a", "agents/researcher-1", "é☃", "\U0001f600"])
def test_non_empty_str_returns_valid_text(value: str) -> None:
    assert non_empty_str("source", value) is value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "source must be a non-empty str, got ''"),
        (None, "source must be a non-empty str, got None"),
        (
            "a\ud800",
            "source must be valid Unicode text, got 'a\\ud800' "
            "(a lone surrogate U+D800 at index 1)",
        ),
        (
            "é\udfff",
            "source must be valid Unicode text, got 'é\\udfff' "
            "(a lone surrogate U+DFFF at index 1)",
        ),
    ],
)
def test_non_empty_str_refuses_naming_the_label(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        non_empty_str("source", value)


def test_optional_str_takes_none_and_valid_text_and_refuses_a_lone_surrogate() -> None:
    assert optional_str("name", None) is None
    assert optional_str("name", "é") == "é"
    message = "name must be valid Unicode text, got '\\udc80' (a lone surrogate U+DC80 at index 0)"
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        optional_str("name", "\udc80")
    with pytest.raises(ValueError, match=r"^name must be a non-empty str or None, got ''$"):
        optional_str("name", "")


# ---------------------------------------------------------------- async functions


async def _work() -> None:
    pass  # pragma: no cover


def _sync() -> None:
    pass  # pragma: no cover


class _CoroutineLike(collections.abc.Coroutine[Any, Any, None]):
    """A class whose instances are coroutines: calling it is as good as an async def."""

    def send(self, value: object) -> None:
        raise StopIteration  # pragma: no cover

    def throw(self, *args: object) -> None:
        raise StopIteration  # pragma: no cover

    def __await__(self) -> Any:
        return iter(())  # pragma: no cover


class _AsyncGeneratorCall:
    async def __call__(self) -> AsyncIterator[int]:
        yield 1  # pragma: no cover


def _forwarding(fn: Callable[[], object]) -> Callable[[], object]:
    @functools.wraps(fn)
    def wrapper() -> object:
        return fn()  # pragma: no cover

    return wrapper


@pytest.mark.parametrize(
    "fn",
    [
        _work,
        functools.partial(functools.partial(_work)),
        _forwarding(_work),
        functools.partial(_forwarding(_work)),
        unittest.mock.AsyncMock(),
        _CoroutineLike,
        # A callable written in C cannot be told without calling it: trusted.
        operator.methodcaller("x"),
    ],
    ids=["async def", "partials", "wraps", "partial of wraps", "AsyncMock", "class", "C"],
)
def test_async_problem_accepts_whatever_returns_a_coroutine(fn: object) -> None:
    assert async_problem(fn) is None


def test_async_problem_describes_what_cannot_return_a_coroutine() -> None:
    assert async_problem(_forwarding(_sync)) == (
        "the plain function '_sync' (define it with async def)"
    )
    assert async_problem(_AsyncGeneratorCall()) == (
        "an instance of '_AsyncGeneratorCall' whose __call__ is an async generator"
    )
    assert async_problem(unittest.mock.Mock()) == (
        "an instance of 'Mock' whose __call__ is not async"
    )


def test_async_problem_stops_on_a_wrapped_cycle() -> None:
    def looped() -> None:
        pass  # pragma: no cover

    looped.__wrapped__ = looped  # type: ignore[attr-defined]
    assert async_problem(looped) == (
        "the plain function "
        "'test_async_problem_stops_on_a_wrapped_cycle.<locals>.looped' (define it with async def)"
    )


@pytest.mark.parametrize(
    ("value", "finite"),
    [
        (0, True),
        (1.5, True),
        (-(10**300), True),
        (10**400, False),  # beyond float's range: it could never meet trio's clock
        (-(10**400), False),
        (float("inf"), False),
        (float("nan"), False),
        (True, False),
        ("1", False),
    ],
)
def test_is_finite_number(value: object, finite: bool) -> None:
    assert is_finite_number(value) is finite


def test_an_int_too_large_for_a_float_is_refused_naming_the_argument() -> None:
    huge = 10**400
    with pytest.raises(ValueError, match="timeout must be") as caught:
        finite_at_least("timeout", huge, 0)
    assert str(caught.value) == f"timeout must be a finite number >= 0, got {huge!r}"
