"""Argument checks shared by the constructors at the API boundary.

Each takes ``object`` on purpose: callers pass values whose annotated type
the user may not have respected, and the message names the argument.
"""

from __future__ import annotations

__all__ = ["is_int", "non_empty_str", "optional_name"]


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def non_empty_str(label: str, value: object) -> str:
    """``value`` if it is a non-empty str, else ValueError naming ``label``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{label} must be a non-empty str, got {value!r}")
    return value


def optional_name(value: object) -> str | None:
    """A ``name=`` argument: None or a non-empty str."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"name must be a non-empty str or None, got {value!r}")
    return value
