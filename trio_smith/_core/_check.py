"""Argument checks shared by every constructor at the API boundary.

Each takes ``object`` on purpose: callers pass values whose annotated type
the user may not have respected, and the message names the argument. It
lives in ``_core`` (pure, stdlib only) so that the core and every shell use
the same checks and the same messages.
"""

from __future__ import annotations

import math

__all__ = [
    "check_text",
    "finite_at_least",
    "int_at_least",
    "is_finite_number",
    "is_int",
    "is_number",
    "non_empty_str",
    "optional_name",
    "optional_str",
    "unicode_problem",
]


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An int or a float (infinite or NaN included) that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """A finite int or float that is not a bool."""
    return is_number(value) and math.isfinite(value)  # type: ignore[arg-type]


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
