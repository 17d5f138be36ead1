"""``serve``: a root supervisor run as a process's service (docs/operations.md).

The decisions are the core's (``_core/_service.py``: the phase table and the
exit status, docs/design.md rule 43); this module is the shell. It

* installs the signal handlers (main thread only) for the stop signals and,
  with ``on_sighup``, SIGHUP; each signal goes through ``run_sync_soon`` to
  one listener task, which also runs the shutdown deadline;
* runs the root ``Supervisor`` in a cancel scope: the first stop signal
  cancels that scope, so the supervisor stops its children in reverse start
  order, each in its own ``shutdown`` time (rule 14); a second signal, or
  the deadline, cuts the shutdown short (``_supervision.cut_short``);
* talks to the service manager when ``NOTIFY_SOCKET`` is set (systemd's
  protocol, sent with :mod:`trio_smith.notify`): ``READY=1`` once the tree
  has started, ``STATUS=`` lines, ``STOPPING=1``, and ``WATCHDOG=1`` every
  half ``WATCHDOG_USEC`` while the root supervisor runs;
* with ``store=``, opens the store first and closes it last, so the events
  it queued are committed before ``serve`` returns.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import FrameType
from typing import Any, Final, Protocol, final

import trio

from . import notify
from ._core._check import is_number
from ._core._service import ServiceAction, ServiceInput, ServiceMachine, ServicePhase, exit_code
from ._core._spec import ChildSpec
from ._event import Event
from ._exceptions import ChildStartFailed, SupervisorGaveUp
from ._supervision import Supervisor, SupervisorState, cut_short

__all__ = ["DEFAULT_STOP_SIGNALS", "EventSink", "serve", "serve_async"]

log: Final = logging.getLogger("trio_smith.serve")

#: The signals that stop a service: a service manager's (SIGTERM) and Ctrl-C's.
DEFAULT_STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)

_UNCATCHABLE: Final = frozenset({signal.SIGKILL, signal.SIGSTOP})


class EventSink(Protocol):
    """What ``serve(store=...)`` takes: an event store, not yet entered.

    ``trio_smith.events.SQLiteEventStore``, ``PostgresEventStore`` and
    ``MemoryEventStore`` are. ``serve`` enters it before the tree starts and
    leaves it after the tree has stopped, which commits what it queued.
    """

    def append_nowait(self, event: Event) -> None: ...

    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc_info: object) -> object: ...


@final
class _StorePublisher:
    """The tree's events, queued straight into the store (``store=``).

    No bus: nothing outside ``serve`` could subscribe to one it made. A
    supervisor publishes with ``publish_nowait`` and never waits (rule 20).
    """

    __slots__ = ("_store",)

    def __init__(self, store: EventSink) -> None:
        self._store = store

    def publish_nowait(self, event: Event) -> None:
        self._store.append_nowait(event)


def serve(
    children: Iterable[ChildSpec],
    *,
    shutdown_deadline: float = 30.0,
    on_sighup: Callable[[], object] | None = None,
    store: EventSink | None = None,
    stop_signals: Iterable[int] = DEFAULT_STOP_SIGNALS,
    **supervisor_options: Any,
) -> int:
    """Run ``Supervisor(children, **supervisor_options)`` as this process's service.

    Blocks like ``trio.run`` until the tree has stopped. The first stop
    signal (SIGTERM, SIGINT) stops the children in reverse start order, each
    in its own ``ChildSpec.shutdown`` time, within ``shutdown_deadline``
    seconds in all; a second stop signal, or the deadline, cancels every
    child left at once. With ``NOTIFY_SOCKET`` set, the service manager is
    told ``READY=1``, ``STATUS=...``, ``STOPPING=1`` and, with
    ``WATCHDOG_USEC``, ``WATCHDOG=1`` (see docs/operations.md).

    Args:
        children: the root supervisor's child specs, in start order.
        shutdown_deadline: seconds from the first stop signal to the cut, a
            number >= 0; ``math.inf``: no deadline.
        on_sighup: called on each SIGHUP (reload your configuration, reopen
            your logs); a sync callable, or an async one whose result is
            awaited in a task of its own. An exception it raises is logged
            (logger ``trio_smith.serve``), never fatal. None: SIGHUP keeps
            the disposition it had (by default it ends the process).
        store: an event store, not yet entered, that receives the tree's
            supervision events; it is closed, its queue committed, before
            ``serve`` returns. For a bus that the children also publish to
            or subscribe to, open it yourself around :func:`serve_async` and
            pass ``events=bus`` instead.
        stop_signals: the signals that stop the service.
        **supervisor_options: ``Supervisor``'s keyword arguments (``strategy``,
            ``max_restarts``, ``within``, ``name``, ``events``...).

    Returns:
        The exit status: 0 after a clean stop (signalled, or the tree ended
        by itself), 1 if the root supervisor gave up (or a child failed to
        start), 3 if the shutdown was cut short. ``sys.exit(serve(...))``.

    Raises:
        ValueError: ``shutdown_deadline`` negative or NaN, an unknown or
            uncatchable stop signal, SIGHUP both a stop signal and
            ``on_sighup``'s, both ``store`` and ``events``; and
            ``Supervisor``'s own refusals.
        TypeError: ``on_sighup`` not callable, ``store`` not an event store,
            and ``Supervisor``'s own refusals.
        RuntimeError: not called in the main thread (only it can handle
            signals).
    """
    service = _Service(
        children,
        shutdown_deadline=shutdown_deadline,
        on_sighup=on_sighup,
        store=store,
        stop_signals=stop_signals,
        options=supervisor_options,
        caller="serve",
    )
    return trio.run(service.run)


async def serve_async(
    children: Iterable[ChildSpec],
    *,
    shutdown_deadline: float = 30.0,
    on_sighup: Callable[[], object] | None = None,
    store: EventSink | None = None,
    stop_signals: Iterable[int] = DEFAULT_STOP_SIGNALS,
    **supervisor_options: Any,
) -> int:
    """:func:`serve` inside a running ``trio.run`` (in the main thread).

    The same arguments, checks and exit status; the signal handlers are
    installed for the call and the previous ones put back when it returns.
    """
    service = _Service(
        children,
        shutdown_deadline=shutdown_deadline,
        on_sighup=on_sighup,
        store=store,
        stop_signals=stop_signals,
        options=supervisor_options,
        caller="serve_async",
    )
    return await service.run()


def _check_deadline(value: object) -> float:
    if not is_number(value) or math.isnan(value) or value < 0:  # type: ignore[arg-type,operator]
        raise ValueError(
            "shutdown_deadline must be a number of seconds >= 0 (math.inf: no deadline), "
            f"got {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


def _check_signals(stop_signals: object, on_sighup: object) -> tuple[signal.Signals, ...]:
    if isinstance(stop_signals, str | bytes) or not isinstance(stop_signals, Iterable):
        raise TypeError(f"stop_signals must be an iterable of signals, got {stop_signals!r}")
    found: list[signal.Signals] = []
    for value in stop_signals:
        try:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError
            number = signal.Signals(value)
        except ValueError:
            raise ValueError(f"unknown signal {value!r} in stop_signals") from None
        if number in _UNCATCHABLE:
            raise ValueError(f"{number.name} cannot be caught: it cannot be a stop signal")
        if number not in found:
            found.append(number)
    if not found:
        raise ValueError("stop_signals must name at least one signal")
    if on_sighup is not None and signal.SIGHUP in found:
        raise ValueError("SIGHUP cannot be both a stop signal and on_sighup's signal")
    return tuple(found)


def _check_store(store: object, options: dict[str, Any]) -> None:
    if store is None:
        return
    if not (
        callable(getattr(store, "append_nowait", None))
        and hasattr(store, "__aenter__")
        and hasattr(store, "__aexit__")
    ):
        raise TypeError(f"store must be an event store (not yet entered) or None, got {store!r}")
    if options.get("events") is not None:
        raise ValueError(
            "pass store= or events=, not both: serve publishes the tree's events to its store"
        )


@contextlib.contextmanager
def _signal_handlers(
    signals: Iterable[signal.Signals], deliver: Callable[[int], None]
) -> Iterator[None]:
    """Within the block, each of ``signals`` is handed to ``deliver`` on the trio thread.

    Not ``trio.open_signal_receiver``: on leaving it, signals not yet read are
    re-delivered to the previous handlers, and a SIGTERM that came while the
    store closed would then kill the process.
    """
    token = trio.lowlevel.current_trio_token()

    def handler(signum: int, frame: FrameType | None) -> None:
        token.run_sync_soon(deliver, signum)  # the one trio call safe in a handler

    previous: dict[signal.Signals, Any] = {}
    try:
        for number in signals:
            previous[number] = signal.signal(number, handler)
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, signal.SIG_DFL if old is None else old)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _watchdog_interval() -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, if the manager watches this process."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return None  # meant for another process of the service (sd_watchdog_enabled)
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


@final
class _Service:
    """One run of ``serve``: the arguments, checked; the machine; the shell's state."""

    def __init__(
        self,
        children: Iterable[ChildSpec],
        *,
        shutdown_deadline: object,
        on_sighup: object,
        store: object,
        stop_signals: object,
        options: dict[str, Any],
        caller: str,
    ) -> None:
        self.deadline = _check_deadline(shutdown_deadline)
        if on_sighup is not None and not callable(on_sighup):
            raise TypeError(f"on_sighup must be a callable or None, got {on_sighup!r}")
        self.on_sighup: Callable[[], object] | None = on_sighup
        self.stop_signals = _check_signals(stop_signals, on_sighup)
        _check_store(store, options)
        self.store: EventSink | None = store  # type: ignore[assignment]
        if store is not None:
            options = {**options, "events": _StorePublisher(self.store)}  # type: ignore[arg-type]
        self.supervisor = Supervisor(children, **options)
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                f"{caller} must run in the main thread: only it can handle signals "
                f"(called in thread {threading.current_thread().name!r})"
            )
        self.machine = ServiceMachine()
        self.scope = trio.CancelScope()
        #: When the deadline cuts the shutdown short (trio's clock).
        self.cut_at = math.inf
        self.last_signal: int | None = None
        self.nursery: trio.Nursery | None = None
        self.notify_failed = False
        #: Whether the manager was told STOPPING=1.
        self.stopping_told = False

    async def run(self) -> int:
        signals = self.stop_signals
        if self.on_sighup is not None:
            signals = (*signals, signal.SIGHUP)
        send, receive = trio.open_memory_channel[int](math.inf)
        with _signal_handlers(signals, send.send_nowait):
            # The store is closed last: what it queued is committed (rule 21).
            async with self._store(), trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._listen, receive, name="trio_smith serve signals")
                failure = await self._run_tree()
                self._feed(ServiceInput.ENDED, failure)
                nursery.cancel_scope.cancel()
        code = exit_code(gave_up=failure is not None, cut_short=self.machine.cut_short)
        log.info("service %r stopped, exit status %d", self.supervisor.name, code)
        return code

    @contextlib.asynccontextmanager
    async def _store(self) -> AsyncIterator[None]:
        if self.store is None:
            yield
        else:
            async with self.store:
                yield

    async def _run_tree(self) -> SupervisorGaveUp | ChildStartFailed | None:
        """Run the root supervisor until it stops; its give-up error, or None."""
        try:
            with self.scope:
                async with self.supervisor:
                    self._feed(ServiceInput.STARTED)
                # Leaving ``async with`` waits until the supervisor has stopped.
        except (SupervisorGaveUp, ChildStartFailed) as failure:
            return failure  # the supervisor logged it and published supervisor_gave_up
        return None

    async def _listen(self, receive: trio.MemoryReceiveChannel[int]) -> None:
        """Take each signal in turn; feed the deadline when it passes."""
        while True:
            signum: int | None = None
            with trio.move_on_at(self.cut_at):
                signum = await receive.receive()
            if signum is None:
                self.cut_at = math.inf
                self._feed(ServiceInput.DEADLINE)
            elif signum == signal.SIGHUP and self.on_sighup is not None:
                self._sighup(self.on_sighup)
            else:
                self.last_signal = signum
                self._feed(ServiceInput.STOP_SIGNAL)

    def _sighup(self, hook: Callable[[], object]) -> None:
        try:
            result = hook()
        except Exception:
            log.exception("on_sighup raised; the service goes on")
            return
        if inspect.isawaitable(result):
            assert self.nursery is not None
            self.nursery.start_soon(_await_hook, result, name="trio_smith serve on_sighup")

    def _feed(self, input: ServiceInput, failure: BaseException | None = None) -> None:
        """Take the machine's actions for ``input``, and tell the manager where we are."""
        for action in self.machine.handle(input):
            if action is ServiceAction.READY:
                self._ready()
            elif action is ServiceAction.SHUTDOWN:
                self._shutdown()
            else:
                self._cut_short(input)
        if input is ServiceInput.ENDED:
            self._ended(failure)

    def _ready(self) -> None:
        active = self.supervisor.count_children().active
        self._notify("READY=1", f"STATUS=running {active} {'child' if active == 1 else 'children'}")
        interval = _watchdog_interval()
        if interval is not None:
            assert self.nursery is not None
            self.nursery.start_soon(self._watchdog, interval, name="trio_smith serve watchdog")

    def _shutdown(self) -> None:
        name = self._signal_name()
        if math.isinf(self.deadline):
            limit = "no deadline"
        else:
            self.cut_at = trio.current_time() + self.deadline
            limit = f"deadline {self.deadline:g} s"
        log.info("%s: stopping every child in reverse start order (%s)", name, limit)
        self._stopping(f"STATUS=stopping on {name} ({limit})")
        self.scope.cancel(reason=f"serve: {name}")

    def _cut_short(self, input: ServiceInput) -> None:
        if input is ServiceInput.DEADLINE:
            why = f"the shutdown deadline ({self.deadline:g} s) passed"
        else:
            why = f"a second stop signal ({self._signal_name()})"
        log.warning("%s: cancelling every child left", why)
        self._notify(f"STATUS=stopping: {why}, cancelling every child left")
        cut_short(self.supervisor)

    def _ended(self, failure: BaseException | None) -> None:
        if failure is not None:
            status = f"STATUS=gave up: {_one_line(str(failure))}"
        else:
            status = "STATUS=stopped"
        if self.stopping_told:
            self._notify(status)
        else:
            self._stopping(status)  # the tree ended by itself, no signal said so first

    def _stopping(self, status: str) -> None:
        self.stopping_told = True
        self._notify("STOPPING=1", status)

    async def _watchdog(self, interval: float) -> None:
        """``WATCHDOG=1`` every ``interval`` while the root supervisor runs and no stop began.

        A root that stops by itself (it gives up, or auto-shutdown) ends the
        pings: the manager is told STOPPING=1 then, so that its watchdog does
        not fire during that shutdown.
        """
        while self.machine.phase is ServicePhase.RUNNING:
            if self.supervisor.statistics().state is not SupervisorState.RUNNING:
                self._stopping("STATUS=stopping: the root supervisor stops by itself")
                return
            self._notify("WATCHDOG=1")
            await trio.sleep(interval)

    def _signal_name(self) -> str:
        number = self.last_signal
        return "a signal" if number is None else signal.Signals(number).name

    def _notify(self, *messages: str) -> None:
        """Tell the service manager, if any; a manager gone is logged once, never fatal."""
        try:
            notify.send(*messages)
        except OSError as error:
            if not self.notify_failed:
                self.notify_failed = True
                log.warning(
                    "cannot tell the service manager (NOTIFY_SOCKET=%r): %s",
                    os.environ.get("NOTIFY_SOCKET"),
                    error,
                )


async def _await_hook(result: Awaitable[object]) -> None:
    try:
        await result
    except Exception:
        log.exception("on_sighup raised; the service goes on")
