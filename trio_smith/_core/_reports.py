"""How many crash reports a supervisor writes in full: Erlang logger's burst limit.

A crash loop must not flood the logs (nor spend its time formatting
tracebacks): each supervisor writes at most ``ReportLimit.burst`` full crash
reports (message and traceback) per ``ReportLimit.window`` seconds, and
counts the others. The count is reported in one summary line when the next
window opens with a report, or when the supervisor stops (docs/design.md
rule 33). Pure: time comes in as an argument.

Windows are fixed, not sliding: a window opens at the first report after the
previous one closed, as Erlang logger's ``burst_limit_window_time`` does.
"""

from __future__ import annotations

from typing import Final, final

import attrs

from ._check import finite_at_least, int_at_least

__all__ = ["DEFAULT_REPORT_LIMIT", "ReportBudget", "ReportLimit"]


@final
@attrs.frozen(kw_only=True)
class ReportLimit:
    """The crash-report burst limit of a supervisor (``Supervisor(report_limit=...)``).

    Args:
        burst: full reports (with traceback) per window, an int >= 1.
        window: the window, seconds of trio's clock, finite and > 0.

    Raises:
        ValueError: an argument out of range or of the wrong type, naming it
            and its value.
    """

    burst: int = 10
    window: float = 1.0

    def __attrs_post_init__(self) -> None:
        int_at_least("burst", self.burst, 1)
        finite_at_least("window", self.window, 0, strict=True)


#: Ten full reports per second per supervisor.
DEFAULT_REPORT_LIMIT: Final = ReportLimit()


@final
class ReportBudget:
    """The state of one supervisor's burst limit.

    Invariant: ``full <= limit.burst``; ``suppressed`` counts the reports
    refused since the last summary.
    """

    __slots__ = ("_closes", "full", "limit", "suppressed")

    def __init__(self, limit: ReportLimit) -> None:
        self.limit = limit
        self._closes = -float("inf")
        #: Full reports written in the current window.
        self.full = 0
        #: Reports refused since the last summary.
        self.suppressed = 0

    def take(self, now: float) -> tuple[bool, int]:
        """A report is due at ``now``: may it be written in full?

        Returns:
            Whether to write it in full, and the number of refused reports to
            summarise first (non-zero only when a new window opens).
        """
        summary = 0
        if now >= self._closes:
            self._closes = now + self.limit.window
            self.full = 0
            summary, self.suppressed = self.suppressed, 0
        if self.full < self.limit.burst:
            self.full += 1
            return True, summary
        self.suppressed += 1
        return False, summary

    def flush(self) -> int:
        """The refused reports not summarised yet (at the supervisor's end); resets them."""
        summary, self.suppressed = self.suppressed, 0
        return summary
