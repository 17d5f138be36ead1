"""What a supervising process leaves behind when it dies: nothing (docs/design.md rule 37).

Two process-wide objects, made on first use and forgotten in a forked child
(which must not hold its parent's ends):

* **The guardian**: a small Python process in a session of its own, reading
  the process groups of this process's programs from a pipe (``+pgid`` when
  one is spawned, ``-pgid`` just before its leader is reaped). When the pipe
  reaches its end (this process died, however it died: only this process
  holds the write end, close-on-exec), it SIGKILLs every group it still
  holds, and exits. Programs are then spawned without a pre-exec hook, so
  Python can ``vfork``, and a whole group dies (grandchildren included), on
  any POSIX system. erlexec's port program works the same way.
* **The lifeline**: one pipe whose read end every program inherits (its
  number in ``TRIO_SMITH_LIFELINE_FD``) and whose write end only this
  process holds: programs that must not rely on a signal read end-of-file
  when this process ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import threading
from typing import Final, final

__all__ = ["GUARDIAN"]

# The guardian's program: stdlib only, run with -I -S (nothing from the
# environment or site-packages). It ignores the signals a terminal or a
# service manager sends a whole process tree: it must outlive this process
# to do its job, and it exits on its own right after.
_PROGRAM: Final = r"""
import os, select, signal
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(number, signal.SIG_IGN)
os.set_blocking(0, False)
# Woken by the hang-up only: data must not wake it (that would cost every
# write a wake-up, about 8 us); what came meanwhile is read twice a second.
poller = select.poll()
poller.register(0, 0)
groups = set()
pending = b""
writer = True
while writer:
    poller.poll(500)
    while True:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            break
        if not data:
            writer = False
            break
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
"""

#: The signals the guardian ignores (see its program).
_IGNORED: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@final
class Guardian:
    """This process's guardian and lifeline (one per process: :data:`GUARDIAN`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: The guardian's pid (0: none running), the write end of its pipe.
        self.pid = 0
        self._write = -1
        #: The groups it holds: those of programs spawned and not yet reaped.
        self._groups: set[int] = set()
        self._lifeline_read = -1
        self._lifeline_write = -1

    def lifeline(self) -> int:
        """The lifeline's read end (not inheritable: pass it in ``pass_fds``)."""
        if self._lifeline_read < 0:
            with self._lock:
                if self._lifeline_read < 0:
                    self._lifeline_read, self._lifeline_write = os.pipe()
        return self._lifeline_read

    def ensure_running(self) -> None:
        """Start the guardian if it is not running (before a spawn).

        Raises:
            OSError: it cannot be started.
        """
        if self._write < 0:
            with self._lock:
                if self._write < 0:
                    self._start()

    def watch(self, group: int) -> None:
        """Kill ``group`` if this process dies from now on (its leader is unreaped).

        Raises:
            OSError: no guardian can be started.
        """
        with self._lock:
            self._groups.add(group)
            self._send(b"+%d\n" % group)

    def forget(self, group: int) -> None:
        """Leave ``group`` alone: its leader is about to be reaped (its id may be reused)."""
        with self._lock:
            self._groups.discard(group)
            with contextlib.suppress(OSError):
                self._send(b"-%d\n" % group)

    def _send(self, message: bytes) -> None:
        if self._write >= 0:
            try:
                # Shorter than PIPE_BUF: written whole or not at all.
                os.write(self._write, message)
                return
            except (BrokenPipeError, BlockingIOError):
                # Dead, or stopped with a full pipe: replaced by a new one
                # that is sent every group.
                self._retire()
        self._start()

    def _start(self) -> None:
        read, write = os.pipe()
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", "-c", _PROGRAM],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
                # Blocked from its birth, ignored once it runs: no window
                # in which a signal to the whole tree could kill it.
                setsigmask=_IGNORED,
            )
        except OSError as error:
            os.close(write)
            raise OSError(
                error.errno,
                f"cannot start the guardian process with {sys.executable!r}: {error.strerror}",
            ) from error
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        if hasattr(fcntl, "F_SETPIPE_SZ"):
            # Room for the messages of half a second at any spawn rate
            # (1 MiB: the most an unprivileged process may ask on Linux).
            with contextlib.suppress(OSError):
                fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 1 << 20)
        self._write = write
        # Every group it must hold (after a replacement), blocking: a new
        # guardian reads at once. From then on a write never waits.
        if self._groups:
            os.write(write, b"".join(b"+%d\n" % g for g in self._groups))
        os.set_blocking(write, False)

    def _retire(self) -> None:
        # Killed first, so that closing its pipe does not make it kill
        # every group; then reaped.
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        os.close(self._write)
        self._write = -1
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.pid = 0

    def _forget_all_in_child(self) -> None:
        # In a forked child: its parent's groups are not its own, and its
        # copies of the write ends must not keep its parent's guardian and
        # lifeline open. The lifeline's read end stays open: a child forked
        # by Popen with a pre-exec hook (parent_death_signal) passes it on.
        self._lock = threading.Lock()
        for fd in (self._write, self._lifeline_write):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pid = 0
        self._write = self._lifeline_read = self._lifeline_write = -1
        self._groups = set()


#: The one guardian of this process.
GUARDIAN: Final = Guardian()
os.register_at_fork(after_in_child=GUARDIAN._forget_all_in_child)
