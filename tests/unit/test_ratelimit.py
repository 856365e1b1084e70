"""Token buckets per tenant: burst, sustained rate, the wait reported for Retry-After, tenants independent."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracehouse.ratelimit import RateLimiter

A, B = uuid.uuid4(), uuid.uuid4()


def test_burst_then_refusal_with_the_wait_until_the_next_token() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.acquire(A, now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire(A, now=100.0) == pytest.approx(0.5)
    assert limiter.acquire(A, now=100.25) == pytest.approx(0.25), "a refusal spends nothing"
    assert limiter.acquire(A, now=100.5) == 0.0
    assert limiter.acquire(A, now=100.5) > 0


def test_tenants_have_their_own_buckets() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.acquire(A, now=0.0) == 0.0
    assert limiter.acquire(A, now=0.0) > 0
    assert limiter.acquire(B, now=0.0) == 0.0, "A's exhaustion does not touch B"


def test_refill_is_capped_at_the_burst() -> None:
    limiter = RateLimiter(rate=10.0, burst=5)
    limiter.acquire(A, now=0.0)
    granted = sum(limiter.acquire(A, now=1000.0) == 0.0 for _ in range(20))
    assert granted == 5, "an idle hour does not bank an hour of tokens"


@given(
    rate=st.floats(0.1, 1000),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, gaps: list[float]) -> None:
    limiter = RateLimiter(rate=rate, burst=burst)
    now, granted = 0.0, 0
    for gap in gaps:
        now += gap
        wait = limiter.acquire(A, now=now)
        assert wait >= 0
        if wait == 0:
            granted += 1
        else:
            assert limiter.acquire(A, now=now + wait + 1e-9) == 0.0, "the reported wait is enough"
            granted += 1
            now += wait + 1e-9
    assert granted <= burst + rate * now + 1e-6
