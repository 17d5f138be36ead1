"""The supervision shell: the pure core's decisions carried out with trio.

Files, from the outside in:

* ``_supervisor``: the public faces (``Supervisor``, ``DynamicSupervisor``):
  argument checks, ``async with``, the API calls, snapshots.
* ``_runtime``: one ``Runtime`` per supervisor: the control loop that feeds
  facts to the core's ``SupervisorMachine`` and carries out its commands.
* ``_boundary``: the child boundary, the task that runs a child's
  incarnations and turns their ends into facts.
* ``_context``: ``ChildContext`` and ``current_child()``; a child reaches its
  supervisor only through the ``ChildOwner`` protocol.
* ``_watch``: hung-child detection (phi accrual per watched incarnation).
* ``_timers``: the delayed restarts (backoff) on trio's clock.
* ``_report``: events, log lines and crash reports (burst-limited).
* ``_process``: ``os_process``, the function of a child that runs a program;
  ``_guardian``: the process that kills a dead supervising process's
  programs.
* ``_nested``: the child function that runs a nested supervisor
  (``Supervisor.spec``), and ``find`` by path.
* ``_pool``: how a pool's children ended (``ChildHandle.wait()``) and
  ``start_child``'s argument check.

Every decision is the core's (``trio_smith/_core``, docs/design.md rule 1);
this package only measures, waits and executes.

For ``trio_smith.routing``, this package offers :func:`listen_status`,
:func:`hung_verdict` and :func:`only_cancelled`, for ``trio_smith.serve``
:func:`cut_short`, for observers (the Prometheus collector)
:func:`children_and_nested`, and nothing else beyond the public API.
"""

from __future__ import annotations

from collections.abc import Iterator

from .._core._spec import ChildInfo
from ._context import ChildContext as ChildContext
from ._context import current_child as current_child
from ._context import hung_verdict as hung_verdict
from ._context import listen_status as listen_status
from ._process import Ready as Ready
from ._process import os_process as os_process
from ._supervisor import ChildHandle as ChildHandle
from ._supervisor import DynamicSupervisor as DynamicSupervisor
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorState as SupervisorState
from ._supervisor import SupervisorStatistics as SupervisorStatistics
from ._supervisor import TreeNode as TreeNode
from ._supervisor import cut_short as cut_short
from ._supervisor import only_cancelled as only_cancelled


def children_and_nested(
    sup: Supervisor | DynamicSupervisor,
) -> Iterator[tuple[ChildInfo, list[Supervisor | DynamicSupervisor]]]:
    """Each child of ``sup`` as the core sees it, with the live supervisors it runs.

    For observers walking a tree at once (the Prometheus collector): the
    core's snapshot, without ``which_children()``'s phi and pid, so a tree of
    10,000 children costs what the core's list costs.
    """
    rt = sup._rt
    for info in rt.machine.which_children():
        yield info, [nested.face for nested in rt.nested(info.id) if nested.face is not None]
