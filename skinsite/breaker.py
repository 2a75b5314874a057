"""A circuit breaker: after a failure, skip calls to a service for a while instead of waiting on it.

A hung Redis (accepting connections, never answering) cost every upload its socket timeouts: about
8 s (issue 13, item 8). After one failure the broker publisher and the cache skip Redis for
``seconds``: the upload is saved as queued (the outbox sweeper, which always tries, sends it once
Redis answers again) and the rate counters fail open. Per process; no shared state is needed.
"""

from __future__ import annotations

import threading
import time


class CircuitBreaker:
    def __init__(self, name: str, seconds: float):
        self.name, self.seconds = name, float(seconds)
        self._open_until = 0.0
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self.seconds

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0
