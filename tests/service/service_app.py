"""A service for tests/service/test_serve.py: ``trio_smith.serve`` in a real process.

``python service_app.py [--slow-stop] [--give-up] [--store PATH] [--deadline S]``

Three children, ``a``, ``b`` and ``c``, started in that order; each prints
``start X`` once started and ``stop X`` when asked to stop, flushed at once.
``--slow-stop``: ``b`` takes no notice of the stop request (``shutdown`` is
``math.inf``): only a second signal or the deadline ends it (it prints
``cancelled b``). ``--give-up``: ``b`` crashes 0.2 s after each start, and the
root supervisor (at most 1 restart) gives up. ``--store``: the tree's events go
to that SQLite file. The exit status is ``serve``'s.
"""

from __future__ import annotations

import argparse
import math
import sys

import trio

from trio_smith import ChildSpec, current_child, serve
from trio_smith.events import SQLiteEventStore


def say(line: str) -> None:
    print(line, flush=True)


async def child(name: str, slow: bool, crash: bool, task_status: trio.TaskStatus[None]) -> None:
    say(f"start {name}")
    task_status.started()
    if crash:
        await trio.sleep(0.2)
        raise RuntimeError(f"{name} crashed")
    await current_child().stop_requested.wait()
    if slow:
        say(f"ignoring stop {name}")
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            say(f"cancelled {name}")
            raise
    say(f"stop {name}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-stop", action="store_true")
    parser.add_argument("--give-up", action="store_true")
    parser.add_argument("--store")
    parser.add_argument("--deadline", type=float, default=math.inf)
    args = parser.parse_args()
    children = [
        ChildSpec(
            name,
            child,
            (name, args.slow_stop and name == "b", args.give_up and name == "b"),
            shutdown=math.inf,
        )
        for name in "abc"
    ]
    store = None if args.store is None else SQLiteEventStore(args.store)
    return serve(
        children,
        shutdown_deadline=args.deadline,
        store=store,
        name="app",
        max_restarts=1,
        within=60,
    )


if __name__ == "__main__":
    sys.exit(main())
