"""A read-only view of a live supervision tree in the browser, over HTTP.

Needs the ``observer`` extra (``pip install 'trio-smith[observer]'``)::

    from trio_smith.observer import Observer

    async with Supervisor(children, events=bus) as root:
        async with Observer(root, port=8790, bus=bus) as obs:
            print("open", obs.url)
            ...

Serves ``/`` (the live page), ``/api/tree`` (JSON), ``/api/events``
(Server-Sent Events), ``/metrics`` (with the ``prometheus`` extra),
``/healthz`` and ``/readyz``. See docs/observer.md.
"""

from ._observer import TREE_VERSION as TREE_VERSION
from ._observer import Observer as Observer
from ._observer import ObserverStatistics as ObserverStatistics

__all__ = ["Observer", "ObserverStatistics", "TREE_VERSION"]
