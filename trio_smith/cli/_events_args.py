"""Argument types of ``trio-smith events``: each turns one command-line word into a value.

argparse calls them while parsing; one that raises ``ArgumentTypeError`` makes
the command stop with one line, ``trio-smith events list: error: argument
--limit: ...``, and exit status 2. The messages show the word with ``!r``.
Each value is checked here, whole, so that nothing the store is given later
can fail on it (an integer beyond SQLite's, a time beyond ``datetime``'s).
"""

from __future__ import annotations

import argparse
import re
import string
from datetime import UTC, datetime, timedelta
from typing import Final, final
from uuid import UUID

import attrs

from ..events import EventFilter, EventType

__all__ = [
    "MAX_INT",
    "CorrelationRef",
    "category",
    "correlation_ref",
    "event_type",
    "moment",
    "position",
    "positive_int",
    "source",
]

#: A relative time: a number and a unit, meaning that long before now.
_AGO: Final = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}

#: The largest integer argument: SQLite's largest integer (64 bits, signed).
#: Limits and positions go into the store's SQL as they are, and a larger
#: one would fail there (OverflowError), after the store was opened.
MAX_INT: Final = 2**63 - 1

#: The fewest hex digits ``trace`` accepts as part of a correlation id.
MIN_FRAGMENT: Final = 4

_HEX: Final = frozenset(string.hexdigits)


def positive_int(text: str) -> int:
    """An integer from 1 to ``MAX_INT`` (``--limit``).

    Raises:
        argparse.ArgumentTypeError: not an integer, less than 1, or more than
            ``MAX_INT``.
    """
    return _bounded_int(text, "an integer {}")


def position(text: str) -> int:
    """A store position, from 1 to ``MAX_INT`` (``--from-position``, ``--to-position``).

    Raises:
        argparse.ArgumentTypeError: not an integer, less than 1, or more than
            ``MAX_INT``.
    """
    return _bounded_int(text, "a position (an integer {})")


def _bounded_int(text: str, expected: str) -> int:
    """``text`` as an integer from 1 to ``MAX_INT``.

    Args:
        expected: what was expected, for the message, with ``{}`` where the
            bound that was broken goes: ``"an integer {}"``.
    """
    try:
        value = int(text)
    except ValueError:
        digits = text.strip().removeprefix("+").replace("_", "")
        # int() refuses more than 4300 digits (sys.get_int_max_str_digits):
        # such a number is too large, not "not an integer".
        if not (digits.isdigit() and len(digits) > len(str(MAX_INT))):
            raise argparse.ArgumentTypeError(
                f"expected {expected.format('>= 1')}, got {text!r}"
            ) from None
        value = MAX_INT + 1
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected {expected.format('>= 1')}, got {text!r}")
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(
            f"expected {expected.format(f'<= {MAX_INT}')}, got {text!r}"
        )
    return value


def moment(text: str) -> datetime:
    """A point in time, as an aware UTC datetime (``--since``, ``--until``).

    Args:
        text: ISO 8601 (``2026-01-02T03:04:05+01:00``, ``2026-01-02``); a
            time without a zone is UTC. Or a duration before now: a number
            and a unit, ``s``, ``m``, ``h`` or ``d`` (``30s``, ``1.5h``).

    Raises:
        argparse.ArgumentTypeError: neither form, or a time outside the years
            1 to 9999 (in UTC).
    """
    ago = _AGO.fullmatch(text)
    if ago is not None:
        seconds = float(ago[1]) * _UNIT_SECONDS[ago[2]]
        try:
            return datetime.now(UTC) - timedelta(seconds=seconds)
        except OverflowError:
            raise argparse.ArgumentTypeError(f"time out of range: {text!r}") from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time or a duration such as 30s, 5m, 2h, 1d; got {text!r}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # a zone that moves it out of years 1 to 9999
        raise argparse.ArgumentTypeError(f"time out of range: {text!r}") from None


def event_type(text: str) -> EventType:
    """An event type from its wire name, ``category.name`` (``--type``).

    Raises:
        argparse.ArgumentTypeError: a malformed name, or a name not listed for
            a reserved category (the message is ``EventType.parse``'s).
    """
    try:
        return EventType.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def category(text: str) -> str:
    """An event category (``--category``): no dots, no spaces.

    Raises:
        argparse.ArgumentTypeError: an empty or malformed category.
    """
    try:
        EventFilter(categories=text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def source(text: str) -> str:
    """A source or source prefix (``--source``, ``--source-prefix``): not empty.

    Raises:
        argparse.ArgumentTypeError: an empty string.
    """
    if not text:
        raise argparse.ArgumentTypeError("expected a non-empty source, got ''")
    return text


@final
@attrs.frozen(kw_only=True, slots=True)
class CorrelationRef:
    """A correlation id as given (``trace``, ``--correlation``): whole, or some of its hex digits.

    Attributes:
        text: the argument as given, for messages.
        uuid: the id, if the argument was a whole one.
        digits: else its hex digits, lower case and without hyphens, to match
            against the start or the end of the correlation ids in a store.
    """

    text: str
    uuid: UUID | None
    digits: str

    def matches(self, correlation_id: UUID) -> bool:
        """Whether ``correlation_id`` is this one, or starts or ends with its digits."""
        if self.uuid is not None:
            return correlation_id == self.uuid
        digits = correlation_id.hex
        return digits.startswith(self.digits) or digits.endswith(self.digits)


def correlation_ref(text: str) -> CorrelationRef:
    """A correlation id, whole or in part (``trace``'s argument, ``--correlation``).

    Raises:
        argparse.ArgumentTypeError: neither a UUID nor ``MIN_FRAGMENT`` to 31
            hex digits (hyphens allowed).
    """
    try:
        whole = UUID(text)
    except ValueError:
        pass
    else:
        return CorrelationRef(text=text, uuid=whole, digits=whole.hex)
    digits = text.replace("-", "").lower()
    if not MIN_FRAGMENT <= len(digits) < 32 or not _HEX.issuperset(digits):
        raise argparse.ArgumentTypeError(
            f"expected a correlation id or at least {MIN_FRAGMENT} of its hex digits, got {text!r}"
        )
    return CorrelationRef(text=text, uuid=None, digits=digits)
