"""Supervised programs: ``os_process(argv, ...)`` is the function of a child.

The core sees no difference between a task and a program (docs/design.md
rule 36): readiness is ``task_status.started()``, ``WATCHDOG=1`` messages are
heartbeats, and the stop sequence is the spec's ``shutdown`` applied to the
program's process group:

* **Spawn.** The program is spawned on the trio thread, in a process group
  of its own, without a pre-exec hook (so Python can ``vfork``), and its
  group is given to this process's guardian (``_guardian.py``), which kills
  it if this process dies. With ``parent_death_signal=True`` it is forked
  with SIGKILL as its parent-death signal too: Linux ties that signal to the
  forking *thread*, and the trio thread lives as long as the supervisor (a
  trio worker thread retires after 10 s idle and would take it along).
* **Stop.** Asked to stop (``ChildSpec.shutdown`` > 0 or ``math.inf``), the
  group gets ``stop_signal``; when the supervisor cancels the child (its
  ``shutdown`` has passed, or 0/None: at once), the group gets SIGKILL.
  Either way the program is reaped before the child ends.
* **No signal to a recycled id.** The group is signalled only while its
  leader is not reaped (its pid, hence the group id, cannot be reused
  before). When the leader exits, what is left of its group is killed before
  the leader is reaped.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import itertools
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, final

import attrs
import trio

from .._core._check import finite_at_least, int_at_least
from .._core._reports import ReportBudget, ReportLimit
from .._exceptions import ProcessFailed
from ..notify import LIFELINE_ENV
from ._context import ChildContext, current_child
from ._guardian import GUARDIAN
from ._runtime import Runtime

__all__ = ["Ready", "os_process"]

#: prctl(2) option: the signal a child gets when the thread that forked it dies.
_PR_SET_PDEATHSIG: Final = 1
#: Whether this system can wait on a program's pipes and pidfd at once
#: (Linux's epoll and pidfd); elsewhere each pipe is read by a task of its own.
_EPOLL: Final = hasattr(select, "epoll") and hasattr(os, "pidfd_open")
#: How long the output of a program that has exited is read to its end.
DRAIN_SECONDS: Final = 1.0
#: The environment variable naming the lifeline pipe's read end, as bytes.
_LIFELINE_KEY: Final = LIFELINE_ENV.encode()


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - no C library to load
        return None


_PRCTL: Final = _load_prctl()


@final
@attrs.frozen
class Ready:
    """When a program counts as started (its ``ChildSpec``'s start is over).

    Build it with :meth:`at_spawn` (the default), :meth:`after` or
    :meth:`notify`.
    """

    kind: str
    seconds: float = 0.0

    @classmethod
    def at_spawn(cls) -> Ready:
        """Started as soon as it is spawned."""
        return cls("spawn")

    @classmethod
    def after(cls, seconds: float) -> Ready:
        """Started once it has stayed up ``seconds`` (supervisord's ``startsecs``).

        Raises:
            ValueError: ``seconds`` is not a finite number >= 0.
        """
        finite_at_least("seconds", seconds, 0)
        return cls("after", float(seconds))

    @classmethod
    def notify(cls) -> Ready:
        """Started when it sends ``READY=1`` (systemd's notify protocol, ``NOTIFY_SOCKET``)."""
        return cls("notify")


_NAMES: Final = itertools.count(1)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _resolve(argv: Sequence[str], cwd: str | None, env: Mapping[str, str] | None) -> str:
    """The executable ``argv[0]`` names, checked as early as it can be known."""
    program = argv[0]
    if os.sep in program:
        path = program if cwd is None or os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, f"program {program!r} does not exist", program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, f"program {program!r} is not executable", program)
        return program
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(program, path=search)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, f"program {program!r} is not on PATH", program)
    return found


def _encode_environment(env: Mapping[str, str]) -> dict[bytes, bytes]:
    """``env`` checked and encoded once (a spawn passes bytes on as they are)."""
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of str to str, got {env!r}")
    encoded = {}
    pairs: list[tuple[object, object]] = list(env.items())
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"env must map str to str, got {key!r}: {value!r}")
        if not key or "=" in key or "\0" in key:
            raise ValueError(f"env has an invalid variable name: {key!r}")
        if "\0" in value:
            raise ValueError(f"env variable {key!r} has a NUL character in its value")
        encoded[os.fsencode(key)] = os.fsencode(value)
    return encoded


def _current_environment() -> dict[bytes, bytes]:
    """A copy of this process's environment, as bytes."""
    # CPython keeps os.environ's contents as a dict of bytes (on POSIX): a
    # C-level copy of it costs about 0.5 us, against 15 us to read
    # os.environ through its mapping and 17 us more for Popen to encode it
    # (a spawn costs about 0.3 ms). Any other Python takes the long way.
    data = getattr(os.environ, "_data", None)
    if type(data) is dict:
        return data.copy()
    return {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}


def os_process(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stop_signal: int = signal.SIGTERM,
    ready: Ready = Ready.at_spawn(),  # noqa: B008 - frozen, shared safely
    exit_codes: Iterable[int] = (0,),
    output_lines: int = 20,
    lifeline: bool = True,
    parent_death_signal: bool = False,
    output_events: int = 0,
    notify: bool | None = None,
) -> Callable[..., Awaitable[None]]:
    """The function of a child that runs a program: ``ChildSpec("model", os_process([...]))``.

    Everything a ``ChildSpec`` means keeps its meaning: restart types,
    strategies, intensity, backoff, ``shutdown`` (``stop_signal`` to the
    program's process group, then SIGKILL once it has passed; 0 or None:
    SIGKILL at once; ``math.inf``: wait), ``heartbeat`` (fed by the program's
    ``WATCHDOG=1`` messages). See docs/processes.md.

    Args:
        argv: the program and its arguments; ``argv[0]`` is looked up on
            ``PATH`` (``env``'s, if given) unless it holds a ``/``.
        cwd: the directory to run it in.
        env: its whole environment (default: this process's).
        stop_signal: sent to its process group when it is asked to stop.
        ready: when it counts as started (:class:`Ready`).
        exit_codes: the exit codes that are a normal exit; any other code, or
            a signal, is a failure (:exc:`~trio_smith.ProcessFailed`).
        output_lines: lines of its output kept for the failure's
            ``output`` (its stdout and stderr also go to the logger
            ``trio_smith.process.<child id>``, at INFO and WARNING).
        lifeline: give it the read end of a pipe whose other end this process
            holds (its fd number in ``TRIO_SMITH_LIFELINE_FD``): it reads EOF
            when this process dies, however it dies.
        parent_death_signal: on Linux, also arm SIGKILL as its parent-death
            signal between fork and exec, for a program that may leave its
            process group (the guardian kills the group). It makes a spawn
            fork the whole process (no ``vfork``): about 2 ms more here
            (docs/processes.md).
        notify: give it a notify socket (``NOTIFY_SOCKET``) for ``READY=1``,
            ``WATCHDOG=1`` and ``STATUS=...``; None (the default): when its
            readiness is :meth:`Ready.notify` or its spec has a
            ``heartbeat``. Without one, ``NOTIFY_SOCKET`` is removed from its
            environment (it must not talk to this process's own manager).
        output_events: publish at most this many output lines a second as
            ``supervision.child_output`` events to the supervisor's publisher
            (0: none); the others are counted in the next one's ``skipped``.
            Publishing never waits: a full bus drops them (counted).

    Returns:
        An async function that takes ``task_status``, for ``ChildSpec``.

    Raises:
        ValueError: an empty ``argv``, or an argument out of range.
        TypeError: an argument of the wrong type.
        FileNotFoundError: the program or ``cwd`` does not exist.
        PermissionError: the program is not executable.
        NotADirectoryError: ``cwd`` is not a directory.
    """
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
        raise TypeError(f"argv must be a sequence of str, got {argv!r}")
    args = [os.fspath(a) for a in argv]
    if not args or not all(isinstance(a, str) for a in args):
        raise ValueError(f"argv must be a non-empty sequence of str, got {argv!r}")
    directory = None if cwd is None else os.fspath(cwd)
    if directory is not None:
        if not os.path.exists(directory):
            raise FileNotFoundError(errno.ENOENT, f"cwd {directory!r} does not exist", directory)
        if not os.path.isdir(directory):
            raise NotADirectoryError(
                errno.ENOTDIR, f"cwd {directory!r} is not a directory", directory
            )
    environment = None if env is None else _encode_environment(env)
    executable = _resolve(args, directory, env)
    try:
        stop = signal.Signals(stop_signal)
    except (ValueError, TypeError):
        raise ValueError(f"stop_signal must be a signal, got {stop_signal!r}") from None
    if not isinstance(ready, Ready):
        raise TypeError(f"ready must be a Ready, got {ready!r}")
    codes = frozenset(exit_codes)
    if any(type(c) is not int for c in codes):
        raise TypeError(f"exit_codes must be ints, got {exit_codes!r}")
    int_at_least("output_lines", output_lines, 0)
    int_at_least("output_events", output_events, 0)
    if notify is not None and not isinstance(notify, bool):
        raise TypeError(f"notify must be a bool or None, got {notify!r}")
    if not isinstance(parent_death_signal, bool):
        raise TypeError(f"parent_death_signal must be a bool, got {parent_death_signal!r}")
    program = _Program(
        argv=args,
        executable=executable,
        cwd=directory,
        env=environment,
        stop_signal=stop,
        ready=ready,
        exit_codes=codes,
        output_lines=output_lines,
        lifeline=lifeline,
        parent_death_signal=parent_death_signal and _PRCTL is not None,
        output_events=output_events,
        notify=notify,
    )

    async def run_program(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await program.run(task_status)

    run_program.__qualname__ = run_program.__name__ = f"os_process[{args[0]}]"
    return run_program


@final
@attrs.frozen(kw_only=True)
class _Program:
    """One program's checked settings; ``run`` is one incarnation."""

    argv: list[str]
    #: ``argv[0]`` as found on PATH when ``os_process`` was called: a spawn
    #: does not search PATH again.
    executable: str
    cwd: str | None
    #: The whole environment, encoded once; None: this process's at each spawn.
    env: dict[bytes, bytes] | None
    stop_signal: signal.Signals
    ready: Ready
    exit_codes: frozenset[int]
    output_lines: int
    lifeline: bool
    parent_death_signal: bool
    output_events: int
    notify: bool | None

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        ctx = current_child()
        log = logging.getLogger(f"trio_smith.process.{ctx.id}")
        env = _current_environment() if self.env is None else self.env.copy()
        pass_fds: list[int] = []
        wanted = self.notify
        if wanted is None:
            wanted = self.ready.kind == "notify" or ctx._watch is not None
        notify = None
        env.pop(b"NOTIFY_SOCKET", None)
        if wanted:
            # READY=1, WATCHDOG=1 and STATUS=... An abstract socket (Linux):
            # nothing on disk to clean up. Binding costs about 0.2 ms, so
            # only programs that may speak get one.
            address = f"\0trio_smith-{os.getpid()}-{next(_NAMES)}"
            plain = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                # Bound here, not with trio's bind, which resolves the address
                # in a worker thread: an abstract address needs no lookup.
                plain.bind(address)
            except BaseException:
                plain.close()
                raise
            notify = trio.socket.from_stdlib_socket(plain)
            env[b"NOTIFY_SOCKET"] = os.fsencode("@" + address[1:])
        if self.lifeline:
            # One pipe for all: its write end is this process's alone.
            lifeline = GUARDIAN.lifeline()
            pass_fds.append(lifeline)
            env[_LIFELINE_KEY] = b"%d" % lifeline
        GUARDIAN.ensure_running()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        parent = os.getpid()
        prctl = _PRCTL

        def die_with_parent() -> None:
            # Between fork and exec, in the program: killed if this thread dies.
            if prctl is not None:
                prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(1)  # this process died before the signal was armed

        try:
            try:
                # On the trio thread, deliberately (see the module docstring).
                process = subprocess.Popen(  # noqa: ASYNC220
                    self.argv,
                    executable=self.executable,
                    cwd=self.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out_write,
                    stderr=err_write,
                    pass_fds=pass_fds,
                    process_group=0,
                    # Without a pre-exec hook, Python can use vfork.
                    preexec_fn=die_with_parent if self.parent_death_signal else None,
                )
            finally:
                os.close(out_write)
                os.close(err_write)
            try:
                GUARDIAN.watch(process.pid)
            except BaseException:
                # Unguarded, it must not run: killed and reaped at once.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise
        except BaseException:
            os.close(out_read)
            os.close(err_read)
            if notify is not None:
                notify.close()
            raise
        watch = _Watch(process, self, ctx, log)
        pipes = [_Pipe(out_read, "stdout"), _Pipe(err_read, "stderr")]
        try:
            async with trio.open_nursery() as nursery:
                if not _EPOLL:
                    for pipe in pipes:
                        nursery.start_soon(watch.pump, pipe)
                if notify is not None:
                    nursery.start_soon(watch.listen, notify, task_status)
                ctx._on_stop = watch.stop_asked
                if ctx._stop_asked:  # asked before it was spawned
                    watch.stop_asked()
                if self.ready.kind == "spawn":
                    watch.started(task_status)
                elif self.ready.kind == "after":
                    nursery.start_soon(watch.started_after, self.ready.seconds, task_status)
                if _EPOLL:
                    await watch.follow(pipes)
                else:
                    await watch.wait_exit()
                    watch.kill_group()
                    with trio.move_on_after(DRAIN_SECONDS):
                        await watch.drained.wait()
                nursery.cancel_scope.cancel()
        finally:
            ctx._on_stop = None
            for pipe in pipes:
                pipe.close()
            with trio.CancelScope(shield=True):
                await watch.end()
            if notify is not None:
                notify.close()
        watch.classify()


@final
class _Pipe:
    """One output pipe of a program: its read end and the line not yet ended."""

    __slots__ = ("buffer", "fd", "name")

    def __init__(self, fd: int, name: Literal["stdout", "stderr"]) -> None:
        self.fd = fd
        self.name: Literal["stdout", "stderr"] = name
        self.buffer = b""

    def feed(
        self, chunk: bytes, line: Callable[[bytes, Literal["stdout", "stderr"]], None]
    ) -> None:
        *complete, self.buffer = (self.buffer + chunk).split(b"\n")
        for raw in complete:
            line(raw, self.name)
        if len(self.buffer) > 65536:  # a line without end: cut it
            line(self.buffer, self.name)
            self.buffer = b""

    def finish(self, line: Callable[[bytes, Literal["stdout", "stderr"]], None]) -> None:
        """At the pipe's end: the last line, even without its newline; then close it."""
        if self.buffer:
            line(self.buffer, self.name)
            self.buffer = b""
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@final
class _Watch:
    """One running program: its output, its messages, its stop and its end."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        program: _Program,
        ctx: ChildContext,
        log: logging.Logger,
    ) -> None:
        self.process = process
        self.program = program
        self.ctx = ctx
        self.log = log
        self.lines: collections.deque[str] = collections.deque(maxlen=program.output_lines)
        self.exited = False
        self.reaped = False
        self.is_started = False
        #: Set once both output pipes have reached their end.
        self.drained = trio.Event()
        self._open_pipes = 2
        ctx._os_pid = process.pid
        owner = ctx._owner
        assert isinstance(owner, Runtime)
        owner.programs = True
        self.report = owner.report
        #: The output-event rate (a burst per second), None: no output events.
        self.budget = (
            None
            if not program.output_events
            else ReportBudget(ReportLimit(burst=program.output_events, window=1.0))
        )

    def started(self, task_status: trio.TaskStatus[None]) -> None:
        if not self.is_started:
            self.is_started = True
            task_status.started()

    async def started_after(self, seconds: float, task_status: trio.TaskStatus[None]) -> None:
        await trio.sleep(seconds)
        self.started(task_status)

    def _signal_group(self, number: int) -> None:
        # Only while the leader is not reaped: its pid, hence the group id,
        # cannot have been reused.
        if self.reaped:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, number)

    def stop_asked(self) -> None:
        self._signal_group(self.program.stop_signal)

    async def wait_exit(self) -> None:
        """Until the leader has exited (not reaped yet: a zombie holds its pid)."""
        if hasattr(os, "pidfd_open"):
            fd = os.pidfd_open(self.process.pid)
            try:
                await trio.lowlevel.wait_readable(fd)
            finally:
                os.close(fd)
        else:  # pragma: no cover - no pidfd: poll (and reap) instead
            while self.process.poll() is None:  # noqa: ASYNC110
                await trio.sleep(0.05)
            self.reaped = True
            GUARDIAN.forget(self.process.pid)
        self.exited = True

    def kill_group(self) -> None:
        self._signal_group(signal.SIGKILL)

    async def end(self) -> None:
        """Kill what is left of the group, then reap the leader (shielded)."""
        self._signal_group(signal.SIGKILL)
        if not self.exited:
            await self.wait_exit()
        if not self.reaped:
            GUARDIAN.forget(self.process.pid)
            self.process.wait()  # it has exited: no blocking
            self.reaped = True

    def classify(self) -> None:
        code = self.process.returncode
        assert code is not None
        if code >= 0 and code in self.program.exit_codes:
            return
        raise ProcessFailed(
            self.program.argv[0],
            returncode=code if code >= 0 else None,
            signal=_signal_name(-code) if code < 0 else None,
            output=tuple(self.lines),
        )

    async def follow(self, pipes: list[_Pipe]) -> None:
        """Read its output until it has exited and its pipes are at their end (Linux).

        One wait for everything, on a private epoll of both pipes and the
        pidfd: no task per pipe (two tasks cost a spawn about 50 us). When the
        leader exits, what is left of its group is killed (the leader,
        unreaped, still holds the group's id), then the output is read to its
        end for at most DRAIN_SECONDS, in case something outside the group
        holds the pipes.
        """
        pidfd = os.pidfd_open(self.process.pid)
        poller = select.epoll()
        try:
            poller.register(pidfd, select.EPOLLIN)
            by_fd = {}
            for pipe in pipes:
                os.set_blocking(pipe.fd, False)
                poller.register(pipe.fd, select.EPOLLIN)
                by_fd[pipe.fd] = pipe
            drain = trio.CancelScope()
            with drain:
                while by_fd or not self.exited:
                    # Each wait is a checkpoint: a flood never holds the thread.
                    await trio.lowlevel.wait_readable(poller.fileno())
                    for fd, _ in poller.poll(0):
                        if fd == pidfd:
                            poller.unregister(pidfd)
                            self.exited = True
                            self.kill_group()
                            drain.deadline = trio.current_time() + DRAIN_SECONDS
                            continue
                        pipe = by_fd[fd]
                        try:
                            chunk = os.read(fd, 65536)
                        except BlockingIOError:
                            continue
                        if chunk:
                            pipe.feed(chunk, self._line)
                        else:
                            poller.unregister(fd)
                            del by_fd[fd]
                            pipe.finish(self._line)
            if not self.exited:  # pragma: no cover - the loop ends only after the exit
                raise AssertionError("follow() ended before the program")
        finally:
            poller.close()
            os.close(pidfd)

    async def pump(self, pipe: _Pipe) -> None:
        """One pipe read to its end (where there is no epoll: a task per pipe)."""
        os.set_blocking(pipe.fd, False)
        while True:
            try:
                chunk = os.read(pipe.fd, 65536)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(pipe.fd)
                continue
            if not chunk:
                break
            pipe.feed(chunk, self._line)
            await trio.lowlevel.checkpoint()
        pipe.finish(self._line)
        self._open_pipes -= 1
        if not self._open_pipes:
            self.drained.set()

    def _line(self, raw: bytes, stream_name: Literal["stdout", "stderr"]) -> None:
        level = logging.INFO if stream_name == "stdout" else logging.WARNING
        text = raw.decode("utf-8", "backslashreplace").rstrip("\r")
        budget = self.budget
        if budget is not None:
            publish, skipped = budget.take(trio.current_time())
            if publish:
                self.report.child_output(self.ctx, self.process.pid, stream_name, text, skipped)
        if self.lines.maxlen:
            self.lines.append(text)
        if self.log.isEnabledFor(level):
            self.log.log(
                level,
                "%s",
                text,
                extra={"child_id": self.ctx.id, "os_pid": self.process.pid},
            )

    async def listen(
        self, sock: trio.socket.SocketType, task_status: trio.TaskStatus[None]
    ) -> None:
        while True:
            data = await sock.recv(4096)
            for line in data.decode("utf-8", "backslashreplace").splitlines():
                key, _, value = line.partition("=")
                if key == "READY" and value == "1" and self.program.ready.kind == "notify":
                    self.started(task_status)
                elif key == "WATCHDOG" and value == "1":
                    self.ctx.heartbeat()
                elif key == "STATUS":
                    self.ctx._status_text = value
