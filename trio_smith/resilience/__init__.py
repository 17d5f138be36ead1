"""Resilience: the circuit breaker, its four companions, and the failure detector.

Semantics: resilience4j's CircuitBreaker, Retry, TimeLimiter, Bulkhead and
RateLimiter, composed in resilience4j's order by :func:`compose`, and Akka's
phi-accrual failure detector (docs/resilience.md).
"""

from .._core._breaker import CircuitState as CircuitState
from .._core._breaker import SlidingWindowType as SlidingWindowType
from .._core._breaker import WaitInterval as WaitInterval
from .._exceptions import BulkheadFull as BulkheadFull
from .._exceptions import CallNotPermitted as CallNotPermitted
from .._exceptions import CallTimedOut as CallTimedOut
from .._exceptions import MaxRetriesExceeded as MaxRetriesExceeded
from .._exceptions import RequestNotPermitted as RequestNotPermitted
from ._breaker import BreakerStatistics as BreakerStatistics
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import CircuitBreakerEvent as CircuitBreakerEvent
from ._bulkhead import Bulkhead as Bulkhead
from ._bulkhead import BulkheadEvent as BulkheadEvent
from ._bulkhead import BulkheadStatistics as BulkheadStatistics
from ._compose import Composition as Composition
from ._compose import compose as compose
from ._detector import PhiAccrualFailureDetector as PhiAccrualFailureDetector
from ._detector import PhiDetectorStatistics as PhiDetectorStatistics
from ._detector import PhiNodeStatistics as PhiNodeStatistics
from ._rate_limiter import RateLimiter as RateLimiter
from ._rate_limiter import RateLimiterEvent as RateLimiterEvent
from ._rate_limiter import RateLimiterStatistics as RateLimiterStatistics
from ._retry import Retry as Retry
from ._retry import RetryEvent as RetryEvent
from ._retry import RetryStatistics as RetryStatistics
from ._time_limiter import TimeLimiter as TimeLimiter
from ._time_limiter import TimeLimiterEvent as TimeLimiterEvent
from ._time_limiter import TimeLimiterStatistics as TimeLimiterStatistics

__all__ = [
    "BreakerStatistics",
    "Bulkhead",
    "BulkheadEvent",
    "BulkheadFull",
    "BulkheadStatistics",
    "CallNotPermitted",
    "CallTimedOut",
    "CircuitBreaker",
    "CircuitBreakerEvent",
    "CircuitState",
    "Composition",
    "MaxRetriesExceeded",
    "PhiAccrualFailureDetector",
    "PhiDetectorStatistics",
    "PhiNodeStatistics",
    "RateLimiter",
    "RateLimiterEvent",
    "RateLimiterStatistics",
    "RequestNotPermitted",
    "Retry",
    "RetryEvent",
    "RetryStatistics",
    "SlidingWindowType",
    "TimeLimiter",
    "TimeLimiterEvent",
    "TimeLimiterStatistics",
    "WaitInterval",
    "compose",
]
