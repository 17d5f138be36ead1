"""What a ``DynamicSupervisor`` adds to the runtime: child ends for handles, argument checks.

* :class:`ChildEnd`: how one pool child ended for good, kept for its
  ``ChildHandle.wait()``. The runtime makes one per ``start_child`` and
  settles it when the core removes the child from its table, or when the
  supervisor exits (docs/design.md rule 39); from then on only the handle
  holds it.
* :class:`ArgumentCheck`: ``start_child``'s arguments against the template
  function's signature, computed once per template.
"""

from __future__ import annotations

import enum
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Final, final

import trio

from .._core._protocol import Exit, ExitReason
from .._core._spec import ChildSpec
from .._exceptions import ChildFailed, ChildTerminated, SupervisorError
from ._context import ChildContext

__all__ = ["ArgumentCheck", "ChildEnd", "settle_at_exit"]


@final
class _How(enum.Enum):
    RESULT = "result"
    FAILED = "failed"
    TERMINATED = "terminate_child"
    SHUTDOWN = "shutdown"
    GAVE_UP = "gave_up"


@final
class ChildEnd:
    """How a pool child ended for good, for ``ChildHandle.wait()``; set once."""

    __slots__ = ("_cause", "_event", "_how", "_result", "_supervisor")

    # One per start_child: only what a wait reads before the end is set here;
    # _settle sets the rest.
    _result: object
    _cause: BaseException | None
    _supervisor: str

    def __init__(self) -> None:
        self._how: _How | None = None
        #: Made by the first waiter: most children are never waited for.
        self._event: trio.Event | None = None

    @property
    def settled(self) -> bool:
        return self._how is not None

    def _settle(
        self, how: _How, supervisor: str, result: object = None, cause: object = None
    ) -> None:
        self._how = how
        self._supervisor = supervisor
        self._result = result
        self._cause = cause if isinstance(cause, BaseException) else None
        if self._event is not None:
            self._event.set()

    def removed(self, ctx: ChildContext | None, stopped: bool, supervisor: str) -> None:
        """The core removed the child while supervising: its own end, or ``terminate_child``."""
        if stopped or ctx is None:
            self._settle(_How.TERMINATED, supervisor)
        elif ctx._normal:
            self._settle(_How.RESULT, supervisor, result=ctx._result)
        else:
            self._settle(_How.FAILED, supervisor, cause=ctx._error)

    async def wait(self, child_id: str) -> object:
        """Wait until the child has ended for good; return its result or raise (rule 39)."""
        if self._how is None:
            event = self._event
            if event is None:
                event = self._event = trio.Event()
            await event.wait()
        else:
            await trio.lowlevel.checkpoint()
        how = self._how
        if how is _How.RESULT:
            return self._result
        # A fresh error for each waiter: one raised object would gather
        # every waiter's traceback.
        error: SupervisorError
        if how is _How.FAILED:
            error = ChildFailed(child_id, self._supervisor)
        else:
            assert how is not None
            error = ChildTerminated(child_id, self._supervisor, how.value)
        error.__cause__ = self._cause
        raise error


def settle_at_exit(
    ends: Mapping[str, ChildEnd],
    command: Exit,
    failure: SupervisorError | None,
    supervisor: str,
) -> None:
    """The supervisor exits: every child still waited for has ended for good.

    The child whose failure made it give up failed (its error is the
    cause); every other one was stopped, by the shutdown or because the
    supervisor gave up (its failure is then the cause).
    """
    gave_up = command.reason in (ExitReason.INTENSITY, ExitReason.ESCALATED)
    for child_id, end in ends.items():
        if end.settled:
            continue
        if gave_up and child_id == command.child_id and isinstance(command.error, BaseException):
            end._settle(_How.FAILED, supervisor, cause=command.error)
        elif failure is not None and command.reason is not ExitReason.START_FAILED:
            end._settle(_How.GAVE_UP, supervisor, cause=failure)
        else:
            end._settle(_How.SHUTDOWN, supervisor)


#: How ``fn`` is told it may call ``task_status.started()``; any value binds.
_STATUS: Final[Mapping[str, object]] = {"task_status": None}
_POSITIONAL: Final = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@final
class ArgumentCheck:
    """``start_child``'s arguments against the template function's signature.

    Computed once per template. For the common shapes (positional
    parameters, ``*args``, keyword-only parameters with defaults,
    ``task_status`` last or keyword-only) a call is two comparisons of the
    argument count; any other shape binds the signature on every call.
    A function without a signature (a builtin) is not checked.
    """

    __slots__ = ("_high", "_kwargs", "_low", "_name", "_signature", "_template_id")

    def __init__(self, template: ChildSpec, takes_status: bool) -> None:
        fn: Callable[..., object] = template.fn
        named = fn
        while isinstance(named, functools.partial):
            named = named.func
        self._name = getattr(named, "__qualname__", None) or repr(named)
        self._template_id = template.id
        self._kwargs: Mapping[str, object] = _STATUS if takes_status else {}
        self._low = 0
        self._high = math.inf
        try:
            self._signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self._signature = None
            return
        bounds = _bounds(self._signature, takes_status)
        if bounds is None:
            self._low, self._high = 1, 0  # an empty range: bind on every call
        else:
            self._low, self._high = bounds

    def __call__(self, args: tuple[object, ...]) -> None:
        """Raise TypeError if ``fn(*args)`` (with ``task_status``) cannot bind.

        Raises:
            TypeError: naming the child function and the problem.
        """
        if self._low <= len(args) <= self._high:
            return
        signature = self._signature
        if signature is None:
            return
        try:
            signature.bind(*args, **self._kwargs)
        except TypeError as exc:
            raise TypeError(
                f"bad arguments for child function {self._name}() of template "
                f"{self._template_id!r}: {exc}"
            ) from None


def _bounds(signature: inspect.Signature, takes_status: bool) -> tuple[int, float] | None:
    """The numbers of positional arguments that bind, or None for a shape to bind each time.

    Only positional parameters before a positional ``task_status`` can be
    filled (filling it too would give it two values), and so can ``*args``
    only without one.
    """
    low = high = 0
    variadic = False
    status_seen = False
    for parameter in signature.parameters.values():
        kind = parameter.kind
        required = parameter.default is inspect.Parameter.empty
        if takes_status and parameter.name == "task_status":
            if kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
                status_seen = True
            elif kind is not inspect.Parameter.KEYWORD_ONLY:
                return None
        elif kind in _POSITIONAL:
            if status_seen:
                if required:
                    return None
            else:
                high += 1
                if required:
                    low = high
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            variadic = not status_seen
        elif kind is inspect.Parameter.KEYWORD_ONLY and required:
            return None
    return low, math.inf if variadic else high
