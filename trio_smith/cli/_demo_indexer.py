"""The demo's indexer: a real program the demo's tree supervises (``os_process``).

Run as ``python -m trio_smith.cli._demo_indexer SEED CHAOS``: it tells its
supervisor it is ready (``READY=1``), then indexes documents, sending a
heartbeat (``WATCHDOG=1``) and its progress (``STATUS=...``) every 0.25 s,
printing a line now and then; with probability ``CHAOS`` per second it
crashes (exit code 3), as a flaky tool process would. It dies with its
supervising process (the lifeline). It imports no trio.
"""

from __future__ import annotations

import random
import sys
import time

from .. import notify

TICK = 0.25


def main(argv: list[str]) -> int:
    seed, chaos = int(argv[1]), float(argv[2])
    rng = random.Random(seed)
    notify.die_with_supervisor()
    time.sleep(0.2)  # loading its index
    notify.status("index loaded")
    notify.ready()
    documents = 0
    while True:
        time.sleep(TICK)
        documents += rng.randint(5, 40)
        notify.watchdog()
        notify.status(f"{documents} documents indexed")
        if rng.random() < chaos * TICK:
            print(f"indexer: corrupt segment after {documents} documents", file=sys.stderr)
            return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
