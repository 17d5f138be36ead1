"""Supervised programs (``os_process``): real processes, real signals."""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import textwrap
import time
from collections.abc import Callable

import pytest
import trio

from trio_smith import (
    ChildSpec,
    ProcessFailed,
    Ready,
    Restart,
    RestartIntensityExceeded,
    Supervisor,
    os_process,
)
from trio_smith._supervision._guardian import GUARDIAN

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")

PY = sys.executable


@pytest.fixture(params=["epoll", "a task per pipe"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of reading a program's output: one wait on an epoll (Linux), a task per pipe."""
    from trio_smith._supervision import _process

    monkeypatch.setattr(_process, "_EPOLL", request.param == "epoll")
    return str(request.param)


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): read its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_for(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll OS state (a pid, a file): the OS offers no event to wait on."""
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_a_program_that_ignores_sigterm_and_forks_is_killed_with_its_group() -> None:
    # It ignores SIGTERM and starts a grandchild that ignores it too; after
    # shutdown=0.5 s both are gone, and the leader was reaped.
    tmp = f"/tmp/trio_smith_grandchild_{os.getpid()}"
    code = f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        open({tmp!r}, "w").write(str(child.pid))
        print("up", flush=True)
        time.sleep(60)
    """
    async with Supervisor([ChildSpec("p", os_process(py(code)), shutdown=0.5)]) as sup:
        await wait_for(lambda: os.path.exists(tmp))
        await trio.sleep(0.1)
        [info] = sup.which_children()
        assert info.os_pid is not None
        leader: int = info.os_pid
        grandchild = int(pathlib.Path(tmp).read_text())  # noqa: ASYNC240 - a few bytes
        assert alive(leader)
        assert alive(grandchild)
        start = trio.current_time()
        await sup.shutdown()
        took = trio.current_time() - start
    os.unlink(tmp)
    assert 0.4 < took < 5
    await wait_for(lambda: not alive(grandchild))
    assert not alive(leader)
    with pytest.raises(ChildProcessError):
        os.waitpid(leader, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG: reaped already


async def test_a_program_that_stops_on_sigterm_stops_before_its_deadline() -> None:
    code = """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        time.sleep(60)
    """
    async with Supervisor([ChildSpec("p", os_process(py(code)), shutdown=30)]) as sup:
        await trio.sleep(0.3)
        start = trio.current_time()
        await sup.shutdown()
    assert trio.current_time() - start < 5


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import sys; sys.exit(3)", "program '{py}' exited with code 3"),
        (
            "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
            "program '{py}' was killed by SIGKILL",
        ),
    ],
)
async def test_an_abnormal_exit_is_a_failure_with_the_code_or_signal(
    code: str, expected: str
) -> None:
    with pytest.raises(RestartIntensityExceeded) as caught:
        async with Supervisor(
            [ChildSpec("p", os_process(py(code)), restart=Restart.PERMANENT)], max_restarts=0
        ):
            await trio.sleep_forever()
    cause = caught.value.__cause__
    assert isinstance(cause, ProcessFailed)
    assert str(cause) == expected.format(py=PY)


async def test_exit_codes_decide_what_is_normal_and_output_is_kept(reader: str) -> None:
    code = "print('one'); print('two'); import sys; sys.exit(5)"
    async with Supervisor(
        [ChildSpec("p", os_process(py(code), exit_codes=(0, 5)), restart=Restart.TRANSIENT)]
    ) as sup:
        await trio.sleep(1)
        [info] = sup.which_children()
        assert info.status.value == "stopped"  # a normal exit: not restarted
        await sup.shutdown()
    with pytest.raises(RestartIntensityExceeded) as caught:
        async with Supervisor(
            [ChildSpec("p", os_process(py(code), output_lines=1))], max_restarts=0
        ):
            await trio.sleep_forever()
    assert isinstance(caught.value.__cause__, ProcessFailed)
    assert caught.value.__cause__.output == ("two",)


async def test_readiness_by_notify_holds_the_next_sibling_back() -> None:
    order: list[str] = []
    began = trio.current_time()
    waited: list[float] = []

    async def sibling(task_status: trio.TaskStatus[None]) -> None:
        # Started only once the program said READY=1, 0.5 s after its spawn.
        waited.append(trio.current_time() - began)
        order.append("sibling")
        task_status.started()
        await trio.sleep_forever()

    code = """
        import os, socket, time
        time.sleep(0.5)
        print("ready now", flush=True)
        address = os.environ["NOTIFY_SOCKET"]
        address = "\\0" + address[1:] if address.startswith("@") else address
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(b"STATUS=warming up\\nREADY=1", address)
        time.sleep(60)
    """
    program = os_process(py(code), ready=Ready.notify())
    async with Supervisor([ChildSpec("p", program), ChildSpec("s", sibling)]) as sup:
        order.append("entered")
        [p, _] = sup.which_children()
        assert p.status_text == "warming up"
        assert p.os_pid is not None
        assert f"pid={p.os_pid}: warming up" in sup.render()
        await sup.shutdown()
    assert order == ["sibling", "entered"]
    assert waited[0] >= 0.5


async def test_bad_input_is_refused_at_os_process(tmp_path: pathlib.Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("not a program")
    plain.chmod(0o644)
    with pytest.raises(ValueError, match="argv") as caught:
        os_process([])
    assert str(caught.value) == "argv must be a non-empty sequence of str, got []"
    with pytest.raises(FileNotFoundError) as missing:
        os_process(["no-such-program-trio-smith"])
    with pytest.raises(TypeError) as bad_flag:
        os_process(["true"], parent_death_signal="yes")  # type: ignore[arg-type]
    assert str(bad_flag.value) == "parent_death_signal must be a bool, got 'yes'"
    name = "'no-such-program-trio-smith'"
    assert str(missing.value) == f"[Errno 2] program {name} is not on PATH: {name}"
    with pytest.raises(PermissionError) as denied:
        os_process([str(plain)])
    assert (
        str(denied.value) == f"[Errno 13] program {str(plain)!r} is not executable: {str(plain)!r}"
    )
    with pytest.raises(NotADirectoryError):
        os_process(["true"], cwd=plain)
    with pytest.raises(ValueError, match="stop_signal") as bad_signal:
        os_process(["true"], stop_signal=999)
    assert str(bad_signal.value) == "stop_signal must be a signal, got 999"
    with pytest.raises(ValueError, match="env") as bad_name:
        os_process(["/bin/true"], env={"PATH": "/bin", "A=B": "1"})
    assert str(bad_name.value) == "env has an invalid variable name: 'A=B'"
    with pytest.raises(ValueError, match="env") as bad_value:
        os_process(["/bin/true"], env={"X": "a\0b"})
    assert str(bad_value.value) == "env variable 'X' has a NUL character in its value"
    with pytest.raises(TypeError, match="env") as bad_type:
        os_process(["/bin/true"], env={"X": 1})  # type: ignore[dict-item]
    assert str(bad_type.value) == "env must map str to str, got 'X': 1"


async def test_the_environment_is_the_one_given_or_this_process_s_at_each_spawn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # env=None: this process's environment as it is at each spawn (a change
    # after os_process() is seen); env=...: exactly that, plus the lifeline.
    code = "import os\nprint(sorted((k, v) for k, v in os.environ.items() if k != 'LC_CTYPE'))"
    inherited = os_process([PY, "-c", code], exit_codes=(0,), output_lines=1)
    given = os_process([PY, "-c", code], env={"ONLY": "this"}, output_lines=1, lifeline=False)
    monkeypatch.setenv("TRIO_SMITH_TEST_LATE", "late value")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("trio_smith.process")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for program in (inherited, given):
            spec = ChildSpec("p", program, restart=Restart.TEMPORARY)
            async with Supervisor([spec]) as sup:
                await wait_for(lambda: not sup.which_children())  # temporary: gone once it ends
                await sup.shutdown()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    late, only = (eval(line) for line in seen)
    assert ("TRIO_SMITH_TEST_LATE", "late value") in late
    assert ("PATH", os.environ["PATH"]) in late
    assert [k for k, _ in late].count("TRIO_SMITH_LIFELINE_FD") == 1
    assert only == [("ONLY", "this")]


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def processes() -> list[tuple[int, str, int, int]]:
    """Every process: (pid, state, parent pid, process group), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    state, ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
            except (FileNotFoundError, ProcessLookupError):
                continue
            found.append((int(entry), state, int(ppid), int(pgrp)))
    return found


def children() -> set[int]:
    """The pids of this process's children, zombies included."""
    return {pid for pid, _, ppid, _ in processes() if ppid == os.getpid()}


async def test_1000_restarts_leave_no_zombie_no_fd_and_flat_memory() -> None:
    # The guardian and the lifeline are made once per process, up front.
    GUARDIAN.ensure_running()
    GUARDIAN.lifeline()
    fds_before = len(os.listdir("/proc/self/fd"))
    program = os_process(["false"])
    async with Supervisor([ChildSpec("p", program)], max_restarts=10**6, within=1.0) as sup:

        async def restarts_reach(n: int) -> None:
            await wait_for(lambda: sup.which_children()[0].restarts >= n, limit=60)

        await restarts_reach(300)  # warmed up: caches, the logging machinery
        rss_300 = rss_kib()
        await restarts_reach(1000)
        rss_1000 = rss_kib()
        await sup.shutdown()
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert children() == {GUARDIAN.pid}  # no child left, zombie or not, but the guardian
    # 700 more cycles: a leak of even 3 KiB per cycle would show.
    assert rss_1000 - rss_300 < 2048, (rss_300, rss_1000)


NOTIFY_CLIENT = """
import os, sys, time
from trio_smith import notify
"""


async def test_readiness_after_a_delay_holds_the_next_sibling_back() -> None:
    began = trio.current_time()
    waited: list[float] = []

    async def sibling(task_status: trio.TaskStatus[None]) -> None:
        waited.append(trio.current_time() - began)
        task_status.started()
        await trio.sleep_forever()

    program = os_process(["sleep", "60"], ready=Ready.after(0.4))
    async with Supervisor([ChildSpec("p", program), ChildSpec("s", sibling)]) as sup:
        await sup.shutdown()
    assert waited[0] >= 0.4


async def test_a_program_that_stops_sending_watchdog_is_judged_hung_and_restarted() -> None:
    from trio_smith import Heartbeat
    from trio_smith.events import SupervisionEvent

    from ..publisher import Recorder

    code = (
        NOTIFY_CLIENT
        + """
for _ in range(10):
    notify.watchdog()
    time.sleep(0.05)
time.sleep(60)  # hung: no more heartbeats
"""
    )
    rec = Recorder()
    spec = ChildSpec("p", os_process([PY, "-c", code]), heartbeat=Heartbeat(0.05), shutdown=0)
    async with Supervisor([spec], events=rec, max_restarts=10) as sup:
        await wait_for(lambda: len(rec.of(SupervisionEvent.CHILD_FAILED)) >= 1, limit=20)
        await sup.shutdown()
    failed = rec.of(SupervisionEvent.CHILD_FAILED)[0]
    assert failed.payload["reason"] == "hung"
    assert failed.payload["error_type"] == "trio_smith.ChildHung"
    started = rec.of(SupervisionEvent.CHILD_STARTED)
    assert len(started) >= 2  # restarted
    assert all(isinstance(e.payload["os_pid"], int) for e in started)


async def test_a_flood_of_output_never_blocks_supervision(reader: str) -> None:
    ticks = 0

    async def ticker(task_status: trio.TaskStatus[None]) -> None:
        nonlocal ticks
        task_status.started()
        while True:
            await trio.sleep(0.01)
            ticks += 1

    code = "import sys\nfor i in range(200000): print('line', i)\nprint('last')\n"
    program = os_process([PY, "-c", code], output_lines=2, exit_codes=())
    with pytest.raises(RestartIntensityExceeded) as caught:
        async with Supervisor([ChildSpec("t", ticker), ChildSpec("p", program)], max_restarts=0):
            await trio.sleep_forever()
    cause = caught.value.__cause__
    assert isinstance(cause, ProcessFailed)
    assert cause.output == ("line 199999", "last")
    assert ticks > 0


def test_the_notify_client_is_a_no_op_without_a_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    from trio_smith import notify

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv(notify.LIFELINE_ENV, raising=False)
    assert notify.ready() is False
    assert notify.die_with_supervisor() is False
    with pytest.raises(ValueError, match="notify message") as caught:
        notify.send("READY")
    assert str(caught.value) == "a notify message is one KEY=value line, got 'READY'"


SUPERVISING = """
import sys, trio
from trio_smith import ChildSpec, Supervisor, os_process

PROGRAM = sys.argv[1]
MARK = sys.argv[2]
PDEATHSIG = sys.argv[3] == "1"

async def main():
    program = os_process([sys.executable, "-c", PROGRAM, MARK], parent_death_signal=PDEATHSIG)
    async with Supervisor([ChildSpec("p", program)]) as sup:
        [info] = sup.which_children()
        print(info.os_pid, flush=True)
        await trio.sleep_forever()

trio.run(main)
"""

# The program ignores its lifeline and SIGTERM, and starts two grandchildren:
# one in its group (its pid in MARK.in_group), one in a session of its own (out of
# reach of the group signals and of the parent-death signal) that keeps the
# lifeline and writes MARK once it reads EOF.
PROGRAM_WITH_ESCAPEE = """
import os, signal, subprocess, sys, time
from trio_smith import notify
signal.signal(signal.SIGTERM, signal.SIG_IGN)
in_group = subprocess.Popen(["sleep", "60"])
open(sys.argv[1] + ".in_group", "w").write(str(in_group.pid))
pid = os.fork()
if pid == 0:
    os.setsid()
    fd = int(os.environ[notify.LIFELINE_ENV])
    while os.read(fd, 1):
        pass
    open(sys.argv[1], "w").write("lifeline closed")
    os._exit(0)
time.sleep(60)
"""


@pytest.mark.parametrize("pdeathsig", [True, False])
async def test_kill_9_of_the_supervising_process_leaves_no_program(
    tmp_path: pathlib.Path, pdeathsig: bool
) -> None:
    # The guardian kills the program's group (the program and its in-group
    # grandchild), with or without the parent-death signal; the escapee
    # exits on its lifeline.
    mark = tmp_path / "mark"
    flag = "1" if pdeathsig else "0"
    proc = await trio.lowlevel.open_process(
        [PY, "-c", SUPERVISING, PROGRAM_WITH_ESCAPEE, str(mark), flag], stdout=-1
    )
    assert proc.stdout is not None
    with trio.fail_after(20):
        line = b""
        while not line.endswith(b"\n"):
            line += await proc.stdout.receive_some(100)
    program = int(line)
    in_group = tmp_path / "mark.in_group"
    await wait_for(in_group.exists)
    await trio.sleep(0.3)
    grandchild = int(in_group.read_text())
    assert alive(program)
    assert alive(grandchild)
    proc.kill()  # SIGKILL: no cleanup code runs in the supervising process
    await proc.wait()
    await wait_for(lambda: not alive(program) and not alive(grandchild), limit=2)
    await wait_for(mark.exists, limit=2)
    await proc.stdout.aclose()


async def test_the_last_lines_before_an_exit_are_never_lost(reader: str) -> None:
    # The program's output is read to its end after it exits (before the
    # child ends), not cut off by its exit. A slow log handler keeps the
    # reader behind the program, so most of the output is still in the pipe
    # when the program exits.
    class Slow(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            time.sleep(0.0001)

    logger = logging.getLogger("trio_smith.process.p")
    handler = Slow()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # 200 KB: more than a pipe holds, so the program exits with the tail
    # of its output still unread.
    code = "import sys\nsys.stdout.write(('x' * 99 + '\\n') * 2000 + 'last\\n')\nsys.exit(1)\n"
    try:
        with pytest.raises(RestartIntensityExceeded) as caught:
            async with Supervisor(
                [ChildSpec("p", os_process([PY, "-c", code], output_lines=1))], max_restarts=0
            ):
                await trio.sleep_forever()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    cause = caught.value.__cause__
    assert isinstance(cause, ProcessFailed)
    assert cause.output == ("last",)


async def test_output_lines_become_events_at_a_bounded_rate() -> None:
    from trio_smith.events import SupervisionEvent

    from ..events.test_supervision_payloads import conforms
    from ..publisher import Recorder

    rec = Recorder()
    code = (
        "import sys, time\nfor i in range(1000): print('out', i)\nprint('err', file=sys.stderr)\n"
    )
    spec = ChildSpec("p", os_process([PY, "-c", code], output_events=5), restart=Restart.TEMPORARY)
    async with Supervisor([spec], events=rec) as sup:
        await wait_for(lambda: not sup.which_children())  # temporary: gone once it exits
        await sup.shutdown()
    lines = rec.of(SupervisionEvent.CHILD_OUTPUT)
    # At most 5 a second: a program done within a second publishes its first 5.
    assert [e.payload["line"] for e in lines] == ["out 0", "out 1", "out 2", "out 3", "out 4"]
    assert all(conforms(e.type, e.payload) for e in lines)
    assert {e.payload["stream"] for e in lines} == {"stdout"}
    assert all(e.payload["child_id"] == "p" for e in lines)
    with pytest.raises(ValueError, match="output_events") as caught:
        os_process(["true"], output_events=-1)
    assert str(caught.value) == "output_events must be an int >= 0, got -1"


@pytest.mark.parametrize(("notify", "expected"), [(None, "None"), (True, "@trio_smith-")])
async def test_a_notify_socket_only_for_programs_that_may_speak(
    monkeypatch: pytest.MonkeyPatch, notify: bool | None, expected: str
) -> None:
    # This process's own NOTIFY_SOCKET (systemd's) never reaches a program.
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    code = "import os, sys; print(os.environ.get('NOTIFY_SOCKET')); sys.exit(1)"
    program = os_process([PY, "-c", code], notify=notify, output_lines=1)
    with pytest.raises(RestartIntensityExceeded) as caught:
        async with Supervisor([ChildSpec("p", program)], max_restarts=0):
            await trio.sleep_forever()
    cause = caught.value.__cause__
    assert isinstance(cause, ProcessFailed)
    assert cause.output[0].startswith(expected)
    with pytest.raises(TypeError) as bad:
        os_process(["true"], notify="yes")  # type: ignore[arg-type]
    assert str(bad.value) == "notify must be a bool or None, got 'yes'"
