"""What a supervisor tells the world: its events, its log lines and its crash reports.

One :class:`Reporter` per supervisor. Every supervision event is built here
from a typed payload (one ``TypedDict`` per event type, the table in
docs/events.md, checked by tests/events/test_supervision_payloads.py) and
published through the library's one :class:`~trio_smith._emit.Emitter`. A
child's failure joins the causal chain of the work it failed in (captured by
the boundary as ``ChildContext._failure_cause``), its restart is caused by
the failure and its next start by the restart: one correlation id finds the
request, the crash, the restart and the retry (docs/design.md rule 40).
Every log record carries structured fields in ``extra``: ``supervisor`` (the
path), and for a child ``child_id``, ``incarnation``, ``reason`` and
``correlation_id`` (the causal chain of its events, None without a
publisher).

Crash reports (a child failed, failed to start, or raised while being
stopped: message and traceback) go through the supervisor's burst limit
(``ReportLimit``, docs/design.md rule 33): a crash loop writes a few full
reports and one summary line, and does not spend its time formatting
tracebacks nobody reads. Events and statistics count every failure.

Telemetry (``trio_smith.telemetry``, docs/design.md rule 44): child started,
failed, restarted and stopped, and a supervisor that gave up, are executed
here too, each behind one check of ``_telemetry.enabled``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict, final

import trio

from .. import _telemetry
from .._core._reports import ReportBudget, ReportLimit
from .._emit import Emitter, ErrorDescription, describe_error, public_name
from .._event import Event, EventPublisher, SupervisionEvent
from .._exceptions import ChildHung
from .._telemetry import (
    CHILD_FAILED,
    CHILD_RESTARTED,
    CHILD_STARTED,
    CHILD_STOPPED,
    SUPERVISOR_GAVE_UP,
)

if TYPE_CHECKING:
    from ._context import ChildContext

__all__ = ["PAYLOADS", "Reporter"]

log: Final = logging.getLogger("trio_smith.supervisor")


def _correlation(event: Event | None) -> str | None:
    return None if event is None else str(event.correlation_id or event.id)


# ------------------------------------------------------------ payloads
#
# Every supervision event's payload, exactly as docs/events.md lists it.


class SupervisorStartedPayload(TypedDict):
    supervisor: str


class SupervisorStoppedPayload(TypedDict):
    supervisor: str
    reason: str


class SupervisorGaveUpPayload(ErrorDescription):
    supervisor: str
    reason: str
    child_id: str | None


class _ChildStartedFields(TypedDict):
    supervisor: str
    child_id: str
    incarnation: int


class ChildStartedPayload(_ChildStartedFields, total=False):
    os_pid: int


class ChildRestartedPayload(TypedDict):
    supervisor: str
    child_id: str
    incarnation: int


# Optional fields are those of a ``total=False`` subclass (``NotRequired``
# is not seen through the string annotations of this module).


ChildStopReason = Literal["normal", "ignored", "shutdown", "interrupted"]


class _ChildStoppedFields(TypedDict):
    supervisor: str
    child_id: str
    incarnation: int
    reason: ChildStopReason


class ChildStoppedPayload(_ChildStoppedFields, total=False):
    # Those of ErrorDescription, here optional: a stop that raised.
    error_type: str | None
    error: str | None
    traceback: str | None


class _ChildFailedFields(ErrorDescription):
    supervisor: str
    child_id: str
    incarnation: int


class ChildFailedPayload(_ChildFailedFields, total=False):
    during: Literal["start"]
    reason: Literal["hung"]
    phi: float | None
    silence: float


class _ChildOutputFields(TypedDict):
    supervisor: str
    child_id: str
    incarnation: int
    os_pid: int
    stream: Literal["stdout", "stderr"]
    line: str


class ChildOutputPayload(_ChildOutputFields, total=False):
    skipped: int


#: The payload type of each supervision event type.
PAYLOADS: Final[dict[object, type]] = {
    SupervisionEvent.SUPERVISOR_STARTED: SupervisorStartedPayload,
    SupervisionEvent.SUPERVISOR_STOPPED: SupervisorStoppedPayload,
    SupervisionEvent.SUPERVISOR_GAVE_UP: SupervisorGaveUpPayload,
    SupervisionEvent.CHILD_STARTED: ChildStartedPayload,
    SupervisionEvent.CHILD_RESTARTED: ChildRestartedPayload,
    SupervisionEvent.CHILD_STOPPED: ChildStoppedPayload,
    SupervisionEvent.CHILD_FAILED: ChildFailedPayload,
    SupervisionEvent.CHILD_OUTPUT: ChildOutputPayload,
}


@final
class Reporter:
    """One supervisor's events, log lines and crash reports.

    ``name`` and ``path`` follow the supervisor (a nested one is renamed
    when it is entered).
    """

    __slots__ = ("budget", "emitter", "last_failure", "name", "path")

    def __init__(self, events: EventPublisher | None, name: str, limit: ReportLimit | None) -> None:
        self.name = name
        self.path = name
        self.emitter = Emitter(events, f"supervisor {name!r}")
        self.budget = None if limit is None else ReportBudget(limit)
        #: The last failure event: the cause of the restarts it brings about.
        self.last_failure: Event | None = None

    @property
    def events(self) -> EventPublisher | None:
        return self.emitter.events

    def adopt(self, name: str, path: str, events: EventPublisher | None) -> None:
        """Take the name, path (and the parent's publisher) given when entered in a child."""
        self.name = name
        self.path = path
        self.emitter.owner = f"supervisor {name!r}"
        if self.emitter.events is None:
            self.emitter.events = events

    def _extra(self, ctx: ChildContext | None, reason: str | None, event: Event | None) -> Any:
        extra: dict[str, object] = {"supervisor": self.path}
        if ctx is not None:
            extra["child_id"] = ctx.id
            extra["incarnation"] = ctx.incarnation
        extra["reason"] = reason
        # The event it reports (JSON-friendly strings): ContextFilter keeps
        # these rather than the writing task's cause (rule 44).
        extra["correlation_id"] = _correlation(event)
        extra["causation_id"] = (
            None if event is None or event.causation_id is None else str(event.causation_id)
        )
        extra["event_id"] = None if event is None else str(event.id)
        return extra

    def _tell_child(
        self,
        name: tuple[str, ...],
        child_id: str,
        incarnation: int,
        os_pid: int | None,
        event: Event | None,
        measurements: dict[str, float],
        **more: object,
    ) -> None:
        """Execute a child's telemetry event, if a handler listens (rule 44)."""
        if not _telemetry.attached(name):
            return
        measurements["incarnation"] = incarnation
        metadata: dict[str, object] = {
            "supervisor": self.path,
            "child_id": child_id,
            "incarnation": incarnation,
            "os_pid": os_pid,
            "correlation_id": _correlation(event),
            **more,
        }
        _telemetry.execute(name, measurements, metadata)

    # ------------------------------------------------------------ supervisor

    def supervisor_started(self) -> None:
        if self.emitter.events is not None:
            payload: SupervisorStartedPayload = {"supervisor": self.path}
            self.emitter.emit(SupervisionEvent.SUPERVISOR_STARTED, self.path, payload)

    def gave_up(self, reason: str, child_id: str | None, failure: BaseException) -> None:
        cause = failure.__cause__
        event = None
        if self.emitter.events is not None:
            payload: SupervisorGaveUpPayload = {
                "supervisor": self.path,
                "reason": reason,
                "child_id": child_id,
                **describe_error(cause),
            }
            event = self.emitter.emit(
                SupervisionEvent.SUPERVISOR_GAVE_UP, self.path, payload, self.last_failure
            )
        if _telemetry.enabled and _telemetry.attached(SUPERVISOR_GAVE_UP):
            _telemetry.execute(
                SUPERVISOR_GAVE_UP,
                {"restarts": len(getattr(failure, "restarts", ()))},
                {"supervisor": self.path, "reason": reason, "child_id": child_id},
            )
        log.error(
            "supervisor %r gave up: %s",
            self.name,
            failure,
            extra={**self._extra(None, reason, event or self.last_failure), "child_id": child_id},
        )

    def auto_shutdown(self, child_id: str | None) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(
                "supervisor %r shuts down: significant child %r ended",
                self.name,
                child_id,
                extra={**self._extra(None, "auto_shutdown", None), "child_id": child_id},
            )

    def stopped(self, reason: str) -> None:
        self._summarise(self.budget.flush() if self.budget is not None else 0)
        if self.emitter.events is not None:
            payload: SupervisorStoppedPayload = {"supervisor": self.path, "reason": reason}
            self.emitter.emit(SupervisionEvent.SUPERVISOR_STOPPED, self.path, payload)

    # ------------------------------------------------------------ children

    def child_started(self, ctx: ChildContext) -> None:
        event = None
        if self.emitter.events is not None:
            payload: ChildStartedPayload = {
                "supervisor": self.path,
                "child_id": ctx.id,
                "incarnation": ctx.incarnation,
            }
            if ctx._os_pid is not None:
                payload["os_pid"] = ctx._os_pid
            event = self.emitter.emit(
                SupervisionEvent.CHILD_STARTED, self.path, payload, ctx._cause
            )
        if _telemetry.enabled:
            self._tell_child(
                CHILD_STARTED, ctx.id, ctx.incarnation, ctx._os_pid, event or ctx._cause, {}
            )

    def child_restarted(self, child_id: str, incarnation: int, restarts: int) -> Event | None:
        """A restart is issued; returns its event, the cause of the new start.

        ``restarts`` counts the supervisor's restarts since it was entered,
        this one included (``SupervisorStatistics.restarts``).
        """
        event = None
        if self.emitter.events is not None:
            payload: ChildRestartedPayload = {
                "supervisor": self.path,
                "child_id": child_id,
                "incarnation": incarnation,
            }
            event = self.emitter.emit(
                SupervisionEvent.CHILD_RESTARTED, self.path, payload, self.last_failure
            )
        if _telemetry.enabled:
            self._tell_child(
                CHILD_RESTARTED,
                child_id,
                incarnation,
                None,
                event or self.last_failure,
                {"restarts": restarts},
            )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "restarting child %r of supervisor %r",
                child_id,
                self.name,
                extra={
                    **self._extra(None, "restart", event),
                    "child_id": child_id,
                    "incarnation": incarnation,
                },
            )
        return event

    def restart_delayed(self, child_id: str, delay: float) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(
                "child %r of supervisor %r restarts in %.3g s",
                child_id,
                self.name,
                delay,
                extra={**self._extra(None, "backoff", None), "child_id": child_id, "delay": delay},
            )

    def _child_stopped(
        self, ctx: ChildContext, reason: ChildStopReason, error: BaseException | None
    ) -> Event | None:
        """Publish ``child_stopped``, describing the error of a stop that raised."""
        if _telemetry.enabled:
            self._tell_child(
                CHILD_STOPPED,
                ctx.id,
                ctx.incarnation,
                ctx._os_pid,
                ctx._cause,
                {},
                reason=reason,
                error_type=None if error is None else public_name(type(error)),
            )
        if self.emitter.events is None:
            return None
        payload: ChildStoppedPayload = {
            "supervisor": self.path,
            "child_id": ctx.id,
            "incarnation": ctx.incarnation,
            "reason": reason,
        }
        if error is not None:
            described = describe_error(error)
            payload["error_type"] = described["error_type"]
            payload["error"] = described["error"]
            payload["traceback"] = described["traceback"]
        return self.emitter.emit(SupervisionEvent.CHILD_STOPPED, self.path, payload)

    def child_ended(self, ctx: ChildContext, normal: bool, error: BaseException | None) -> None:
        """How a child ended: stopped (normal, ignored, shutdown) or failed; crash reports."""
        if ctx._stop_asked and ctx._started:
            event = self._child_stopped(ctx, "shutdown", error)
            if error is not None:
                # OTP's shutdown_error report (D16).
                self._crash(
                    "child %r of supervisor %r raised while being stopped",
                    ctx,
                    error,
                    "shutdown",
                    event,
                )
            return
        if normal:
            self._child_stopped(ctx, "normal" if ctx._started else "ignored", None)
            return
        event = None
        if self.emitter.events is not None:
            described = describe_error(error)
            failed: ChildFailedPayload = {
                "supervisor": self.path,
                "child_id": ctx.id,
                "incarnation": ctx.incarnation,
                "error_type": described["error_type"],
                "error": described["error"],
                "traceback": described["traceback"],
            }
            if type(error) is ChildHung:
                failed["reason"] = "hung"
                # JSON has no infinity: None for a phi past float range.
                failed["phi"] = error.phi if math.isfinite(error.phi) else None
                failed["silence"] = error.silence
            if not ctx._started:
                failed["during"] = "start"
            # In the causal chain of the work it failed in, if any (its
            # request, its event), captured in its own task by the boundary;
            # the restart and the next start follow on (docs/design.md rule 40).
            event = self.last_failure = self.emitter.emit(
                SupervisionEvent.CHILD_FAILED, self.path, failed, ctx._failure_cause
            )
        if _telemetry.enabled:
            self._tell_child(
                CHILD_FAILED,
                ctx.id,
                ctx.incarnation,
                ctx._os_pid,
                event or ctx._failure_cause,
                {},
                error_type=None if error is None else public_name(type(error)),
                reason=(
                    "hung"
                    if type(error) is ChildHung
                    else ("failed" if ctx._started else "start_failed")
                ),
            )
        if ctx._started:
            self._crash("child %r of supervisor %r failed", ctx, error, "failed", event)
        else:
            self._crash(
                "child %r of supervisor %r failed to start", ctx, error, "start_failed", event
            )

    def child_output(
        self,
        ctx: ChildContext,
        pid: int,
        stream: Literal["stdout", "stderr"],
        line: str,
        skipped: int,
    ) -> None:
        """A program's output line (``os_process(..., output_events=N)``)."""
        if self.emitter.events is None:
            return
        payload: ChildOutputPayload = {
            "supervisor": self.path,
            "child_id": ctx.id,
            "incarnation": ctx.incarnation,
            "os_pid": pid,
            "stream": stream,
            "line": line,
        }
        if skipped:
            payload["skipped"] = skipped
        self.emitter.emit(SupervisionEvent.CHILD_OUTPUT, self.path, payload, ctx._cause)

    def child_interrupted(self, ctx: ChildContext, error: BaseException) -> None:
        """A child ended by a BaseException (KeyboardInterrupt...): it propagates, no restart."""
        event = self._child_stopped(ctx, "interrupted", error)
        log.warning(
            "child %r of supervisor %r was interrupted by %s; it propagates, no restart",
            ctx.id,
            self.name,
            type(error).__name__,
            extra=self._extra(ctx, "interrupted", event),
        )

    # ------------------------------------------------------------ crash reports

    def _crash(
        self,
        message: str,
        ctx: ChildContext,
        error: BaseException | None,
        reason: str,
        event: Event | None,
    ) -> None:
        """A crash report, within the burst limit (docs/design.md rule 33)."""
        if not log.isEnabledFor(logging.ERROR):
            return
        budget = self.budget
        if budget is not None:
            full, summary = budget.take(trio.current_time())
            if summary:
                self._summarise(summary)
            if not full:
                return
        log.error(
            message,
            ctx.id,
            self.name,
            exc_info=error,
            extra=self._extra(ctx, reason, event),
        )

    def _summarise(self, suppressed: int) -> None:
        if not suppressed:
            return
        assert self.budget is not None
        limit = self.budget.limit
        log.error(
            "supervisor %r: %d more crash reports not written (at most %d in full per %g s); "
            "its events and statistics count every failure",
            self.name,
            suppressed,
            limit.burst,
            limit.window,
            extra={**self._extra(None, "suppressed", None), "suppressed": suppressed},
        )
