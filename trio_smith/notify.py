"""The program side of ``os_process``: tell the supervisor you are ready, alive, busy.

For Python programs run by ``trio_smith.os_process`` (or by systemd: the
messages are systemd's notify protocol, sent to the datagram socket named in
``NOTIFY_SOCKET``). Every function is a no-op returning False when the
program was not started with a notify socket, so a program can call them
unconditionally::

    from trio_smith import notify

    notify.status("loading the model")
    load()
    notify.ready()          # with os_process(..., ready=Ready.notify())
    while serving:
        notify.watchdog()   # a heartbeat (ChildSpec(..., heartbeat=Heartbeat(...)))
        ...

:func:`die_with_supervisor` makes the program exit when its supervising
process dies, whatever the signals (the lifeline pipe).

This module imports nothing from the rest of trio_smith and no trio.
"""

from __future__ import annotations

import os
import socket
import threading

__all__ = ["LIFELINE_ENV", "die_with_supervisor", "ready", "send", "status", "stopping", "watchdog"]

#: The environment variable naming the lifeline pipe's read end.
LIFELINE_ENV = "TRIO_SMITH_LIFELINE_FD"


def send(*messages: str) -> bool:
    """Send ``KEY=value`` messages in one datagram; False if there is no notify socket.

    Raises:
        ValueError: a message without ``=`` or with a newline.
    """
    for message in messages:
        if "=" not in message or "\n" in message:
            raise ValueError(f"a notify message is one KEY=value line, got {message!r}")
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux's abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto("\n".join(messages).encode(), address)
    return True


def ready() -> bool:
    """``READY=1``: the program has started (its supervisor starts the next child)."""
    return send("READY=1")


def watchdog() -> bool:
    """``WATCHDOG=1``: a heartbeat for the supervisor's hung-child detection."""
    return send("WATCHDOG=1")


def status(text: str) -> bool:
    """``STATUS=text``: shown in the supervision tree beside the program's pid."""
    return send(f"STATUS={text}")


def stopping() -> bool:
    """``STOPPING=1``: the program is shutting down (systemd's meaning)."""
    return send("STOPPING=1")


def die_with_supervisor(exit_code: int = 1) -> bool:
    """Exit the program (``os._exit``) as soon as its supervising process dies.

    A daemon thread waits on the lifeline pipe, whose write end only the
    supervising process holds: it reads EOF when that process ends, however
    it ends (even SIGKILL), and signals need not reach this program.
    Returns False if the program has no lifeline.
    """
    fd = os.environ.get(LIFELINE_ENV)
    if fd is None:
        return False
    number = int(fd)

    def wait() -> None:
        while os.read(number, 1):
            pass
        os._exit(exit_code)

    threading.Thread(target=wait, name="trio_smith lifeline", daemon=True).start()
    return True
