"""trio_smith: Erlang/OTP-exact supervision trees and resilience patterns for Trio.

The supervision API. Events live in ``trio_smith.events``, the circuit
breaker and failure detector in ``trio_smith.resilience``, routing in
``trio_smith.routing``.
"""

# First: fails loudly if trio changed a private name trio_smith reads (design rule 32).
from . import _trio_private as _trio_private
from ._core._reports import ReportLimit as ReportLimit
from ._core._spec import AutoShutdown as AutoShutdown
from ._core._spec import Backoff as Backoff
from ._core._spec import ChildCounts as ChildCounts
from ._core._spec import ChildInfo as ChildInfo
from ._core._spec import ChildSpec as ChildSpec
from ._core._spec import ChildStatus as ChildStatus
from ._core._spec import Heartbeat as Heartbeat
from ._core._spec import Restart as Restart
from ._core._spec import Strategy as Strategy
from ._exceptions import ChildAlreadyPresent as ChildAlreadyPresent
from ._exceptions import ChildAlreadyStarted as ChildAlreadyStarted
from ._exceptions import ChildFailed as ChildFailed
from ._exceptions import ChildFailureEscalated as ChildFailureEscalated
from ._exceptions import ChildHung as ChildHung
from ._exceptions import ChildLimitReached as ChildLimitReached
from ._exceptions import ChildNotFound as ChildNotFound
from ._exceptions import ChildRestarting as ChildRestarting
from ._exceptions import ChildRunning as ChildRunning
from ._exceptions import ChildStartFailed as ChildStartFailed
from ._exceptions import ChildTerminated as ChildTerminated
from ._exceptions import IllegalStateTransition as IllegalStateTransition
from ._exceptions import NoCurrentChild as NoCurrentChild
from ._exceptions import ProcessFailed as ProcessFailed
from ._exceptions import RestartIntensityExceeded as RestartIntensityExceeded
from ._exceptions import RestartRecord as RestartRecord
from ._exceptions import SupervisorError as SupervisorError
from ._exceptions import SupervisorGaveUp as SupervisorGaveUp
from ._exceptions import SupervisorNotRunning as SupervisorNotRunning
from ._exceptions import TrioSmithError as TrioSmithError
from ._serve import serve as serve
from ._serve import serve_async as serve_async
from ._supervision import ChildContext as ChildContext
from ._supervision import ChildHandle as ChildHandle
from ._supervision import DynamicSupervisor as DynamicSupervisor
from ._supervision import Ready as Ready
from ._supervision import Supervisor as Supervisor
from ._supervision import SupervisorState as SupervisorState
from ._supervision import SupervisorStatistics as SupervisorStatistics
from ._supervision import TreeNode as TreeNode
from ._supervision import current_child as current_child
from ._supervision import os_process as os_process

__version__ = "0.1.0.dev0"

__all__ = [
    "Supervisor",
    "DynamicSupervisor",
    "ChildHandle",
    "current_child",
    "os_process",
    "Ready",
    "ChildContext",
    "SupervisorState",
    "SupervisorStatistics",
    "TreeNode",
    "AutoShutdown",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "ChildStatus",
    "Heartbeat",
    "ReportLimit",
    "Restart",
    "Strategy",
    "RestartRecord",
    "TrioSmithError",
    "IllegalStateTransition",
    "SupervisorError",
    "SupervisorGaveUp",
    "RestartIntensityExceeded",
    "ChildFailureEscalated",
    "ChildStartFailed",
    "ChildHung",
    "ChildNotFound",
    "ChildRunning",
    "ChildRestarting",
    "ChildAlreadyStarted",
    "ChildAlreadyPresent",
    "ChildLimitReached",
    "ChildFailed",
    "ChildTerminated",
    "SupervisorNotRunning",
    "NoCurrentChild",
    "ProcessFailed",
    "serve",
    "serve_async",
]
