"""The child boundary: one task per child, running its incarnations.

``return`` is a normal exit; ``except Exception`` / ``except* Exception`` an
abnormal one; an end after the supervisor asked the child to stop is a stop,
never a failure (OTP R3.5); an incarnation judged hung ends abnormally with
its ``ChildHung``, even if asked to stop after the verdict (D26).
``trio.Cancelled`` and every other BaseException propagate, and a child
ended by one (KeyboardInterrupt, SystemExit) is never restarted
(docs/design.md rule 15).

The task runs the next incarnation itself when the runtime restarted the
child at once (the fast path, ``Runtime.child_ended``); otherwise it ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core._spec import ChildSpec
from .._event import failure_cause, set_cause
from ._context import CURRENT, ChildContext, TaskStatus

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["run_child"]


async def run_child(rt: Runtime, ctx: ChildContext, spec: ChildSpec, takes_status: bool) -> None:
    """One child's task: the child boundary, once per incarnation it runs."""
    fn = spec.fn
    args = spec.args
    next_ctx: ChildContext | None = ctx
    while next_ctx is not None:
        ctx = next_ctx
        CURRENT.set(ctx)
        # Each incarnation starts outside any work: a cause left by the one
        # before (this task runs restarts itself) must not leak into it.
        set_cause(None)
        normal = False
        error: BaseException | None = None
        try:
            with ctx._scope:
                try:
                    try:
                        if takes_status:
                            ctx._result = await fn(*args, task_status=TaskStatus(ctx))
                        else:
                            ctx._result = await fn(*args)
                        normal = True
                    except Exception as exc:
                        error = exc
                        ctx._failure_cause = failure_cause(exc)
                except* Exception as group:
                    # A group mixing errors with Cancelled or KeyboardInterrupt
                    # (rule 15): the errors are the failure, the rest keeps
                    # propagating.
                    error = group
                    ctx._failure_cause = failure_cause(group)
        except BaseException as exc:
            # KeyboardInterrupt, SystemExit...: never a failure, never a restart.
            rt.child_escaped(ctx, exc)
            raise
        watch = ctx._watch
        if watch is not None and watch.hung is not None:
            # Judged hung and cancelled (Runtime._judge_hung): a failure,
            # whatever the child did while unwinding, even if a stop was
            # asked after the verdict (the pool gave up over a sibling's
            # end): the core cancels only an incarnation nothing is stopping
            # yet, so the cancel came first and it is never a stop
            # (docs/design.md D26); a later stop absorbs it (D16).
            normal = False
            error = watch.hung
            ctx._failure_cause = failure_cause(error)
        next_ctx = rt.child_ended(ctx, normal, error, takes_status)
