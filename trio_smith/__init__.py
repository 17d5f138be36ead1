"""trio_smith: Erlang/OTP-exact supervision trees and resilience patterns for Trio.

The supervision API. Events live in ``trio_smith.events``, the circuit
breaker and failure detector in ``trio_smith.resilience``, routing in
``trio_smith.routing``.
"""

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
from ._exceptions import ChildFailureEscalated as ChildFailureEscalated
from ._exceptions import ChildHung as ChildHung
from ._exceptions import ChildLimitReached as ChildLimitReached
from ._exceptions import ChildNotFound as ChildNotFound
from ._exceptions import ChildRestarting as ChildRestarting
from ._exceptions import ChildRunning as ChildRunning
from ._exceptions import ChildStartFailed as ChildStartFailed
from ._exceptions import IllegalStateTransition as IllegalStateTransition
from ._exceptions import NoCurrentChild as NoCurrentChild
from ._exceptions import RestartIntensityExceeded as RestartIntensityExceeded
from ._exceptions import RestartRecord as RestartRecord
from ._exceptions import SupervisorError as SupervisorError
from ._exceptions import SupervisorGaveUp as SupervisorGaveUp
from ._exceptions import SupervisorNotRunning as SupervisorNotRunning
from ._exceptions import TrioSmithError as TrioSmithError
from ._runtime import ChildContext as ChildContext
from ._runtime import current_child as current_child
from ._supervisor import ChildHandle as ChildHandle
from ._supervisor import DynamicSupervisor as DynamicSupervisor
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorState as SupervisorState
from ._supervisor import SupervisorStatistics as SupervisorStatistics
from ._supervisor import TreeNode as TreeNode

__version__ = "0.1.0.dev0"

__all__ = [
    "Supervisor",
    "DynamicSupervisor",
    "ChildHandle",
    "current_child",
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
    "SupervisorNotRunning",
    "NoCurrentChild",
]
