"""The guardian: a process that kills a dead supervising process's program groups."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import trio

from .test_os_process import alive, processes, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")

PY = sys.executable

# Each script prints pids, one per line, then ends as its last line says.
PRELUDE = """
import os, signal, subprocess, sys, time
from trio_smith._supervision._guardian import GUARDIAN

def spawn():
    # A program in a group of its own, with a grandchild in the same group.
    # Not on this script's stdout: the test reads that to its end.
    p = subprocess.Popen(
        ["sh", "-c", "sleep 60 & exec sleep 60"], process_group=0, stdout=subprocess.DEVNULL
    )
    return p.pid

def guardian():
    # Never 0: os.kill(0, ...) would signal the test's own process group.
    assert GUARDIAN.pid > 0, "no guardian"
    return GUARDIAN.pid

def say(*pids):
    print(*pids, flush=True)
"""


async def run_script(body: str) -> list[int]:
    """Run PRELUDE + body in a fresh interpreter; the pids it printed."""
    script = PRELUDE + textwrap.dedent(body)
    done = await trio.run_process([PY, "-c", script], capture_stdout=True, check=False)
    return [int(word) for word in done.stdout.split()]


def group_members(group: int) -> set[int]:
    """The live (not zombie) processes of a process group."""
    return {pid for pid, state, _, pgrp in processes() if pgrp == group and state != "Z"}


def kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


async def test_the_guardian_kills_the_groups_it_holds_when_its_process_dies() -> None:
    watched, forgotten, guardian = await run_script(
        """
        a, b = spawn(), spawn()
        GUARDIAN.watch(a)
        GUARDIAN.watch(b)
        GUARDIAN.forget(b)
        time.sleep(0.2)  # both groups complete (the sh has started its sleeps)
        say(a, b, GUARDIAN.pid)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    try:
        # The whole watched group goes: the leader and its grandchild.
        await wait_for(lambda: not group_members(watched), limit=3)
        await wait_for(lambda: not alive(guardian), limit=3)
        assert len(group_members(forgotten)) == 2  # forgotten: left alone
    finally:
        kill_group(watched)
        kill_group(forgotten)


async def test_a_dead_guardian_is_replaced_and_given_every_group() -> None:
    first, second, old, new = await run_script(
        """
        a = spawn()
        GUARDIAN.watch(a)
        old = guardian()
        os.kill(old, signal.SIGKILL)
        time.sleep(0.2)
        b = spawn()
        GUARDIAN.watch(b)  # finds it dead: a new one holds a and b
        say(a, b, old, GUARDIAN.pid)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    try:
        assert new not in (0, old)
        await wait_for(lambda: not group_members(first) and not group_members(second), limit=3)
    finally:
        kill_group(first)
        kill_group(second)


async def test_a_forked_child_does_not_keep_the_guardian_waiting() -> None:
    # A child forked without exec (multiprocessing's fork) closes its copy of
    # the guardian's pipe, so the guardian still sees its parent die.
    program, forked = await run_script(
        """
        a = spawn()
        GUARDIAN.watch(a)
        pid = os.fork()
        if pid == 0:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the test reads stdout to its end
            time.sleep(30)
            os._exit(0)
        say(a, pid)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    try:
        assert alive(forked)
        await wait_for(lambda: not group_members(program), limit=3)
    finally:
        os.kill(forked, signal.SIGKILL)
        kill_group(program)


async def test_the_guardian_ignores_a_terminal_and_leaves_with_its_process() -> None:
    # SIGINT/SIGTERM/SIGHUP (a terminal, a service manager signalling the
    # whole tree) leave it running; when its process exits, it exits too.
    guardian, session = await run_script(
        """
        GUARDIAN.ensure_running()
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            os.kill(guardian(), number)
        time.sleep(0.3)
        os.waitpid(GUARDIAN.pid, os.WNOHANG) == (0, 0) or sys.exit("the guardian died")
        say(GUARDIAN.pid, os.getsid(GUARDIAN.pid))
        """
    )
    # A session of its own: out of reach of its parent's terminal.
    assert session == guardian
    await wait_for(lambda: not alive(guardian), limit=3)


def test_a_guardian_that_cannot_start_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from trio_smith._supervision._guardian import Guardian

    guardian = Guardian()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(FileNotFoundError) as caught:
        guardian.ensure_running()
    assert str(caught.value) == (
        "[Errno 2] cannot start the guardian process with '/nonexistent/python': "
        "No such file or directory"
    )
    assert guardian.pid == 0
    # Nothing left open: a later attempt starts from scratch.
    monkeypatch.setattr(sys, "executable", PY)
    guardian.ensure_running()
    assert alive(guardian.pid)
    guardian._retire()
    assert guardian.pid == 0


def test_the_guardian_program_is_valid_python() -> None:
    from trio_smith._supervision import _guardian

    # An empty pipe: it reads EOF at once, kills nothing and exits 0.
    done = subprocess.run(
        [PY, "-I", "-S", "-c", _guardian._PROGRAM], stdin=subprocess.DEVNULL, check=False
    )
    assert done.returncode == 0
