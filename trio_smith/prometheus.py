"""Prometheus metrics of live supervision trees, circuit breakers, event buses and stores.

Needs the ``prometheus`` extra (``pip install 'trio-smith[prometheus]'``)::

    from prometheus_client import REGISTRY, start_http_server
    from trio_smith.prometheus import TrioSmithCollector

    collector = TrioSmithCollector(supervisors=[root], breakers=[breaker])
    REGISTRY.register(collector)
    start_http_server(9100)
    async with collector.running(interval=5):
        ...

A trio task takes a snapshot every ``interval``; scrapes, on prometheus_client's
thread, read the last one. Every metric is listed in docs/operations.md.
"""

from ._prometheus import TrioSmithCollector as TrioSmithCollector

__all__ = ["TrioSmithCollector"]
