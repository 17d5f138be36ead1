"""Argument checks shared by every constructor at the API boundary.

Each takes ``object`` on purpose: callers pass values whose annotated type
the user may not have respected, and the message names the argument. It
lives in ``_core`` (pure, stdlib only) so that the core and every shell use
the same checks and the same messages.
"""

from __future__ import annotations

import math

__all__ = [
    "finite_at_least",
    "int_at_least",
    "is_finite_number",
    "is_int",
    "is_number",
    "non_empty_str",
    "optional_name",
    "optional_str",
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


def non_empty_str(label: str, value: object) -> str:
    """``value`` if it is a non-empty str, else ValueError naming ``label``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{label} must be a non-empty str, got {value!r}")
    return value


def optional_str(label: str, value: object) -> str | None:
    """None or a non-empty str, else ValueError naming ``label``."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{label} must be a non-empty str or None, got {value!r}")
    return value


def optional_name(value: object) -> str | None:
    """A ``name=`` argument: None or a non-empty str."""
    return optional_str("name", value)
