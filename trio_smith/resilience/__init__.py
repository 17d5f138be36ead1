"""Resilience: the circuit breaker and the phi-accrual failure detector.

Semantics: resilience4j's circuit breaker and Akka's phi-accrual failure
detector (docs/resilience.md).
"""

from .._core._breaker import CircuitState as CircuitState
from .._core._breaker import SlidingWindowType as SlidingWindowType
from .._core._breaker import WaitInterval as WaitInterval
from .._exceptions import CallNotPermitted as CallNotPermitted
from ._breaker import BreakerStatistics as BreakerStatistics
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import CircuitBreakerEvent as CircuitBreakerEvent
from ._detector import PhiAccrualFailureDetector as PhiAccrualFailureDetector
from ._detector import PhiDetectorStatistics as PhiDetectorStatistics
from ._detector import PhiNodeStatistics as PhiNodeStatistics

__all__ = [
    "BreakerStatistics",
    "CallNotPermitted",
    "CircuitBreaker",
    "CircuitBreakerEvent",
    "CircuitState",
    "PhiAccrualFailureDetector",
    "PhiDetectorStatistics",
    "PhiNodeStatistics",
    "SlidingWindowType",
    "WaitInterval",
]
