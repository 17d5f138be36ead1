"""Resilience: the circuit breaker and the phi-accrual failure detector.

Only the breaker's rejection error exists so far; the breaker itself comes
with its own issue.
"""

from .._exceptions import CallNotPermitted as CallNotPermitted

__all__ = ["CallNotPermitted"]
