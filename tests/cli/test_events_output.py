"""``trio-smith events`` on a terminal: a header row, colour, the terminal's width, ``--full``.

Most tests call ``trio_smith.cli.main`` in this process with stdout a fake
terminal (``isatty()`` is True; the width comes from ``COLUMNS``, which
``shutil.get_terminal_size`` reads first). One runs the command on a real
pseudo-terminal of 120 columns, as a user's shell does. The store is the
fixture store of tests/cli/test_events_cli.py.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import pty
import re
import struct
import subprocess
import sys
from typing import Any

import pytest

from trio_smith.cli import main

from .test_events_cli import ENV, LINES, call, db, ok

__all__ = ["db"]  # the fixture store, used by name

HEADER = (
    "POS  TIME                      TYPE                            SOURCE                "
    "CORR      PAYLOAD"
)


class Terminal(io.StringIO):
    """stdout as a terminal."""

    def isatty(self) -> bool:
        return True


def on_terminal(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: object,
    columns: int = 200,
    no_color: bool = True,
) -> list[str]:
    """The lines one ``trio-smith events`` command prints on a terminal ``columns`` wide."""
    screen = Terminal()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", screen)
        patch.setenv("COLUMNS", str(columns))
        patch.delenv("TERM", raising=False)
        if no_color:
            patch.setenv("NO_COLOR", "1")
        else:
            patch.delenv("NO_COLOR", raising=False)
        status = main(["events", *map(str, args)])
    assert (status, capsys.readouterr().err) == (0, "")
    return screen.getvalue().splitlines()


def test_a_terminal_gets_a_header_row_and_a_pipe_does_not(
    db: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = on_terminal(monkeypatch, capsys, "list", db, "--limit", "2")
    assert lines == [HEADER, LINES[13], LINES[14]]
    assert on_terminal(monkeypatch, capsys, "list", db, "--limit", "1", "--no-header") == [
        LINES[14]
    ]
    # A pipe: no header unless asked; never with --json.
    assert ok(call(capsys, "list", db, "--limit", "1")) == [LINES[14]]
    assert ok(call(capsys, "list", db, "--limit", "1", "--header")) == [HEADER, LINES[14]]
    [line] = ok(call(capsys, "list", db, "--limit", "1", "--header", "--json"))
    assert json.loads(line)["position"] == 14
    # Nothing matches: nothing printed, not even the header.
    assert on_terminal(monkeypatch, capsys, "query", db, "--type", "agent.state_changed") == []


def test_payloads_are_cut_to_the_terminal_s_width(
    db: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The columns before the payload take 95 characters.
    for columns in (120, 150):
        [_, line] = on_terminal(
            monkeypatch, capsys, "list", db, "--to-position", "10", "--limit", "1", columns=columns
        )
        assert len(line) == columns
        assert line.endswith("…")
        assert line[: columns - 1] == LINES[10][: columns - 1]
    # Wide enough: the whole payload, which a pipe cuts at 80 characters.
    [_, line] = on_terminal(
        monkeypatch, capsys, "list", db, "--to-position", "10", "--limit", "1", columns=300
    )
    assert line.endswith('{"item":"widget-3","cents":1999}]}')
    # Narrower than the columns: the payload keeps 16 characters, the terminal wraps.
    [_, line] = on_terminal(
        monkeypatch, capsys, "list", db, "--to-position", "10", "--limit", "1", columns=80
    )
    assert line.endswith('  {"lines":[{"ite…')
    assert len(line) == 95 + 16


COLORED = (
    "  \x1b[2m7\x1b[0m  \x1b[2m2026-01-02T03:04:05.012Z\x1b[0m  "
    "\x1b[31msupervision.child_failed\x1b[0m        root                  "
    '\x1b[35m7c8d9e01\x1b[0m  {"supervisor":"root","child_id":"alpha","error":"slow"}'
)


def test_a_terminal_gets_colour_unless_no_color_is_set(
    db: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("query", db, "--from-position", "7", "--to-position", "8")
    header, failed, restarted = on_terminal(monkeypatch, capsys, *args, no_color=False)
    assert header.startswith("\x1b[1mPOS\x1b[0m  \x1b[1mTIME\x1b[0m")
    assert failed == COLORED
    assert restarted.startswith("  \x1b[2m8\x1b[0m  ")
    assert "\x1b[33msupervision.child_restarted\x1b[0m" in restarted
    # NO_COLOR (any non-empty value), or a pipe: no escape at all.
    assert on_terminal(monkeypatch, capsys, *args)[1:] == [LINES[7], _line(8)]
    assert "\x1b" not in call(capsys, *args).stdout


def _line(position: int) -> str:
    return LINES.get(position) or (
        "  8  2026-01-02T03:04:05.013Z  supervision.child_restarted     root                  "
        '7c8d9e01  {"supervisor":"root","child_id":"alpha","restarts":1}'
    )


def test_full_prints_each_payload_whole_and_indented(
    db: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ok(call(capsys, "list", db, "--to-position", "10", "--limit", "2", "--full"))
    assert lines[0] == (
        "  9  2026-01-02T03:04:05.020Z  agent.message_received          agents/alpha          "
        "7c8d9e01"
    )
    assert lines[1:4] == ["    {", '      "text": "hi"', "    }"]
    assert lines[4].startswith(" 10  2026-01-02T03:04:06.500Z  billing.invoice_paid")
    payload = "\n".join(line.removeprefix("    ") for line in lines[5:])
    assert json.loads(payload) == {
        "lines": [{"item": f"widget-{i}", "cents": 1999} for i in range(4)]
    }
    assert all(line.startswith("    ") for line in lines[5:])
    # On a terminal the header has no payload column.
    screen = on_terminal(monkeypatch, capsys, "list", db, "--limit", "1", "--full")
    assert screen == [
        HEADER.removesuffix("      PAYLOAD"),
        LINES[14][:-9].rstrip(),
        "    {",
        '      "k": 1',
        "    }",
    ]


def test_trace_fits_the_terminal_and_shows_payloads_in_full(
    db: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = on_terminal(monkeypatch, capsys, "trace", db, "9e01", columns=80)
    failed = "    │       └── supervision.child_failed  root  +12.8ms  "
    line = next(line for line in lines if line.startswith(failed))
    assert len(line) == 80
    assert line == failed + '{"supervisor":"root","…'
    full = ok(call(capsys, "trace", db, "9e01", "--full"))
    assert full[:6] == [
        "correlation 0197c0de-1a2b-7c3d-8e4f-5a6b7c8d9e01: 7 events",
        "agent.created  agents/alpha  +0.0ms",
        "│   {",
        '│     "name": "alpha"',
        "│   }",
        "└── agent.started  agents/alpha  +1.5ms",
    ]
    # A leaf's payload sits under it, within its parent's guides.
    at = full.index("    │       └── supervision.child_failed  root  +12.8ms")
    assert full[at + 1 : at + 3] == [
        "    │           │   {",
        '    │           │     "supervisor": "root",',
    ]
    assert full[-3:] == ["            {", '              "text": "hi"', "            }"]


def _winsize(fd: int, rows: int, columns: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _on_a_pty(args: list[Any], env: dict[str, str]) -> str:
    """What ``python -m trio_smith events ARGS`` writes to a real terminal 120 columns wide."""
    leader, follower = pty.openpty()
    _winsize(follower, 24, 120)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trio_smith", "events", *map(str, args)],
            stdout=follower,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=30,
            check=False,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert (done.returncode, done.stderr) == (0, b"")
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux pseudo-terminal")
def test_on_a_real_terminal(db: pathlib.Path) -> None:
    env = {k: v for k, v in ENV.items() if k not in ("COLUMNS", "NO_COLOR", "TERM")}
    args = ["list", db, "--to-position", "10", "--limit", "1"]
    shown = _on_a_pty(args, env).splitlines()
    assert re.sub(r"\x1b\[\d+m", "", shown[0]) == HEADER
    assert shown[0].startswith("\x1b[1mPOS\x1b[0m  \x1b[1mTIME\x1b[0m")
    assert "\x1b[35m456789ab\x1b[0m" in shown[1]
    plain = _on_a_pty(args, {**env, "NO_COLOR": "1"}).splitlines()
    assert plain[0] == HEADER
    assert len(plain[1]) == 120
    assert plain[1] == LINES[10][:119] + "…"
