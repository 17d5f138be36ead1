"""Nested supervisors: the child that runs one (``Supervisor.spec``), and finding one by path.

A child made by ``Supervisor.spec`` / ``DynamicSupervisor.spec`` runs
:func:`run_tree`: it enters a fresh supervisor (OTP R5.7: a new one per
start), counts as started once that supervisor has started all its
children, and ends when it stops. The rest is the runtime's: the nested
supervisor registers with the child that runs it (``Runtime.attach``), takes
its name from the child's id, and is stopped in order when its parent stops
the child (D19). See docs/design.md rule 39.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, final

from .._exceptions import ChildNotFound
from ._context import TaskStatus

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["NestedTree", "find", "run_tree"]


@final
class NestedTree:
    """Builds the nested supervisor of a child, afresh for each start."""

    __slots__ = ("_label", "_make")

    def __init__(self, make: Callable[[], AbstractAsyncContextManager[object]], label: str) -> None:
        self._make = make
        self._label = label

    def __call__(self) -> AbstractAsyncContextManager[object]:
        return self._make()

    def __repr__(self) -> str:
        return f"<nested {self._label}>"


async def run_tree(tree: NestedTree, task_status: TaskStatus) -> None:
    """The function of a child that runs a supervisor.

    Started once the nested supervisor has started every child of its own;
    ends when that supervisor stops, or raises what it raises when it gives
    up (its parent then applies the child's restart type, D6).
    """
    async with tree():
        task_status.started()
    # Leaving ``async with`` waited until the nested supervisor stopped.


def find(rt: Runtime, path: str) -> Runtime:
    """The live supervisor at ``path`` below ``rt``: names from ``rt``'s own, "/"-separated.

    Raises:
        TypeError: ``path`` is not a str.
        ChildNotFound: no live supervisor there; it names the path and the
            part of it that was found.
    """
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, got {path!r}")
    names = path.split("/")
    if names[0] != rt.name:
        raise ChildNotFound(names[0], path=path)
    for depth, name in enumerate(names[1:], 1):
        below = _named(rt, name)
        if below is None:
            raise ChildNotFound(name, path=path, found="/".join(names[:depth]))
        rt = below
    return rt


def _named(rt: Runtime, name: str) -> Runtime | None:
    """A live supervisor named ``name`` that a live child of ``rt`` runs, first in start order."""
    for ctx in rt.runs.values():
        if ctx._ended:
            continue
        for nested in ctx._supervisors:
            if nested.name == name and nested.exit is None:
                return nested
    return None
