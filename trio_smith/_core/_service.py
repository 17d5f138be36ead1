"""What a service does on a stop signal, its deadline, and how it ends: ``serve``'s decisions.

``trio_smith.serve`` runs a root supervisor as a process's service. Its shell
(``trio_smith/_serve.py``) listens for signals, runs the deadline timer and
talks to the service manager; this module decides (docs/design.md rules 1, 5
and 43):

* :class:`ServiceMachine`: a table from (phase, input) to the next phase and
  the actions to take. The first stop signal begins the ordered shutdown and
  arms the deadline; a second one, or the deadline, cuts it short (every
  child left is cancelled at once). A pair missing from the table raises
  ``IllegalStateTransition`` and changes nothing.
* :func:`exit_code`: the process's exit status from how the tree ended.

Pure: no trio, no clock, no signals.
"""

from __future__ import annotations

import enum
from typing import Final, final

from .._exceptions import IllegalStateTransition

__all__ = [
    "EXIT_CUT_SHORT",
    "EXIT_GAVE_UP",
    "EXIT_OK",
    "ServiceAction",
    "ServiceInput",
    "ServiceMachine",
    "ServicePhase",
    "exit_code",
]

#: A clean stop (signalled, every child stopped within its ``shutdown``) or
#: an end of the tree's own (auto-shutdown).
EXIT_OK: Final = 0
#: The root supervisor gave up (``SupervisorGaveUp``, ``ChildStartFailed``).
EXIT_GAVE_UP: Final = 1
#: Stopped, but the shutdown was cut short (a second signal or the deadline):
#: some children were cancelled instead of being stopped in their own time.
#: 2 is left to bad arguments (argparse's convention, the CLI's).
EXIT_CUT_SHORT: Final = 3


@final
class ServicePhase(enum.Enum):
    """Where a service is in its life."""

    #: The root supervisor is starting its children.
    STARTING = "starting"
    #: Every child has started; the service manager was told READY=1.
    RUNNING = "running"
    #: A stop signal came: the ordered shutdown runs under the deadline.
    STOPPING = "stopping"
    #: The shutdown was cut short: every child left is being cancelled.
    CUTTING = "cutting"
    #: The root supervisor has stopped.
    ENDED = "ended"


@final
class ServiceInput(enum.Enum):
    """What the shell tells the machine."""

    #: The root supervisor started every child (its ``async with`` entered).
    STARTED = "started"
    #: SIGTERM or SIGINT (the service's stop signals).
    STOP_SIGNAL = "stop_signal"
    #: The shutdown deadline passed.
    DEADLINE = "deadline"
    #: The root supervisor stopped, whatever the reason.
    ENDED = "ended"


@final
class ServiceAction(enum.Enum):
    """What the shell does."""

    #: Tell the service manager READY=1 and start the watchdog.
    READY = "ready"
    #: Begin the ordered shutdown (reverse start order, each child's
    #: ``shutdown`` honoured), tell the manager STOPPING=1, arm the deadline.
    SHUTDOWN = "shutdown"
    #: Cancel every child left at once, down the tree.
    CUT_SHORT = "cut_short"


_P = ServicePhase
_I = ServiceInput
_A = ServiceAction

#: (phase, input) -> (next phase, actions). A signal during the start stops
#: the start too (D5), and a start that completes as the stop begins is no
#: READY=1; a signal after the cut changes nothing; the tree may end in any
#: phase (giving up, auto-shutdown, a start that failed).
_TABLE: Final[dict[tuple[ServicePhase, ServiceInput], tuple[ServicePhase, tuple[_A, ...]]]] = {
    (_P.STARTING, _I.STARTED): (_P.RUNNING, (_A.READY,)),
    (_P.STARTING, _I.STOP_SIGNAL): (_P.STOPPING, (_A.SHUTDOWN,)),
    (_P.STARTING, _I.ENDED): (_P.ENDED, ()),
    (_P.RUNNING, _I.STOP_SIGNAL): (_P.STOPPING, (_A.SHUTDOWN,)),
    (_P.RUNNING, _I.ENDED): (_P.ENDED, ()),
    (_P.STOPPING, _I.STARTED): (_P.STOPPING, ()),
    (_P.STOPPING, _I.STOP_SIGNAL): (_P.CUTTING, (_A.CUT_SHORT,)),
    (_P.STOPPING, _I.DEADLINE): (_P.CUTTING, (_A.CUT_SHORT,)),
    (_P.STOPPING, _I.ENDED): (_P.ENDED, ()),
    (_P.CUTTING, _I.STARTED): (_P.CUTTING, ()),
    (_P.CUTTING, _I.STOP_SIGNAL): (_P.CUTTING, ()),
    (_P.CUTTING, _I.ENDED): (_P.ENDED, ()),
    (_P.ENDED, _I.STOP_SIGNAL): (_P.ENDED, ()),
}


@final
class ServiceMachine:
    """The phases of a service (see the module docstring)."""

    __slots__ = ("cut_short", "phase", "signalled")

    def __init__(self) -> None:
        self.phase = ServicePhase.STARTING
        #: Whether a stop signal began the shutdown.
        self.signalled = False
        #: Whether the shutdown was cut short (a second signal, the deadline).
        self.cut_short = False

    def handle(self, input: ServiceInput) -> tuple[ServiceAction, ...]:
        """Take ``input``; return the actions to take, in order.

        Raises:
            IllegalStateTransition: the table has no row for the pair; nothing
                changed.
        """
        row = _TABLE.get((self.phase, input))
        if row is None:
            raise IllegalStateTransition("service", self.phase.value, input.value)
        self.phase, actions = row
        if ServiceAction.SHUTDOWN in actions:
            self.signalled = True
        elif ServiceAction.CUT_SHORT in actions:
            self.cut_short = True
        return actions


def exit_code(*, gave_up: bool, cut_short: bool) -> int:
    """The process's exit status once the root supervisor has stopped.

    Giving up wins: a tree that gave up during a shutdown that was then cut
    short still failed.
    """
    if gave_up:
        return EXIT_GAVE_UP
    if cut_short:
        return EXIT_CUT_SHORT
    return EXIT_OK
