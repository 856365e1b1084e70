"""Per-tenant token buckets: `rate` requests per second sustained, `burst` at once; over it, 429."""

from __future__ import annotations

import threading
import time
import uuid


class RateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}  # tenant -> (tokens, last refill)
        self._lock = threading.Lock()

    def acquire(self, tenant_id: uuid.UUID, now: float | None = None) -> float:
        """0 when the request may proceed, else the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(tenant_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[tenant_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[tenant_id] = (tokens, now)
            return (1.0 - tokens) / self.rate
