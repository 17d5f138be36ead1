"""Benchmark: the observer (trio_smith.observer) serving a big tree, and idling.

Targets (docs/observer.md):

* ``GET /api/tree`` of a tree of 10,000 children in under 100 ms, measured
  end to end over a real loopback socket (connect, request, the whole JSON
  read by a client in the same process), median of the rounds; the time to
  build the JSON alone is shown beside it;
* an idle page costs the application under 1% CPU: one event-stream client
  (in another process, so that its own reading does not count) and no
  events, for a few seconds; the figure is the application process's CPU
  time over wall time, minus the same tree's idle cost without an observer.

Run: ``make bench`` or ``.venv/bin/python benchmarks/observer.py``. It prints
every figure and one PASS/FAIL line per target (it always exits 0).
"""

from __future__ import annotations

import statistics
import sys
import time

import h11
import trio

from trio_smith import ChildSpec, Supervisor
from trio_smith._observer import _node
from trio_smith.observer import Observer

CHILDREN = 10_000
ROUNDS = 15
TREE_TARGET_MS = 100.0
IDLE_SECONDS = 5.0
IDLE_TARGET = 0.01

_READER = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /api/events HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
while s.recv(65536):
    pass
"""


async def idle() -> None:
    await trio.sleep_forever()


async def fetch(host: str, port: int, path: str) -> bytes:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(method="GET", target=path, headers=[("host", host)])
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(1 << 20))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            elif not isinstance(event, h11.Response):
                raise AssertionError(repr(event))


async def tree_figures() -> tuple[float, float, int]:
    children = [ChildSpec(f"worker-{i}", idle) for i in range(CHILDREN)]
    async with Supervisor(children, name="big") as root, Observer(root) as obs:
        _, _, address = obs.url.partition("//")
        host, _, port = address.rstrip("/").rpartition(":")
        served, built = [], []
        size = 0
        for _ in range(ROUNDS):
            start = time.perf_counter()
            size = len(await fetch(host, int(port), "/api/tree"))
            served.append(time.perf_counter() - start)
            start = time.perf_counter()
            _node(root, trio.current_time())
            built.append(time.perf_counter() - start)
        await root.shutdown()
    return statistics.median(served) * 1000, statistics.median(built) * 1000, size


async def idle_cpu(observe: bool) -> float:
    children = [ChildSpec(f"worker-{i}", idle) for i in range(10)]
    async with Supervisor(children, name="app") as root:
        if not observe:
            start_cpu, start = time.process_time(), time.perf_counter()
            await trio.sleep(IDLE_SECONDS)
            cpu = (time.process_time() - start_cpu) / (time.perf_counter() - start)
        else:
            async with Observer(root) as obs:
                port = obs.url.rstrip("/").rpartition(":")[2]
                reader = await trio.lowlevel.open_process([sys.executable, "-c", _READER, port])
                try:
                    while obs.statistics().clients == 0:  # noqa: ASYNC110 (another process)
                        await trio.sleep(0.05)
                    await trio.sleep(1.0)  # past the connection's first tree
                    start_cpu, start = time.process_time(), time.perf_counter()
                    await trio.sleep(IDLE_SECONDS)
                    cpu = (time.process_time() - start_cpu) / (time.perf_counter() - start)
                finally:
                    reader.kill()
                    await reader.wait()
        await root.shutdown()
    return cpu


async def main() -> None:
    served_ms, built_ms, size = await tree_figures()
    print(f"/api/tree of {CHILDREN:,} children ({size:,} bytes, median of {ROUNDS})")
    print(f"  served over loopback     {served_ms:8.2f} ms")
    print(f"  JSON document built      {built_ms:8.2f} ms")
    baseline = await idle_cpu(observe=False)
    observed = await idle_cpu(observe=True)
    cost = max(observed - baseline, 0.0)
    print(f"idle page ({IDLE_SECONDS:.0f} s, one event stream, no events)")
    print(f"  CPU without an observer  {baseline:8.3%}")
    print(f"  CPU with one idle page   {observed:8.3%}")
    print()
    verdict = "PASS" if served_ms < TREE_TARGET_MS else "FAIL"
    print(f"{verdict} /api/tree of {CHILDREN:,} children: {served_ms:.1f} ms (target < 100 ms)")
    verdict = "PASS" if cost < IDLE_TARGET else "FAIL"
    print(f"{verdict} idle page: {cost:.3%} of a CPU (target < 1%)")


if __name__ == "__main__":
    trio.run(main)
