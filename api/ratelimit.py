"""Per-token and per-address rate limits: in-process token buckets (no broker, no shared state).

    EVALGATE_RATE_LIMIT_PER_SECOND=100 EVALGATE_RATE_LIMIT_BURST=500 evalgate serve

Each verified API token has a bucket keyed by the token's sha256 (never the secret itself) holding
``burst`` requests and refilled at ``rate_limit_per_second``; a request that finds it empty gets 429
with ``Retry-After`` (whole seconds until the next request would pass). Requests with an unknown or
revoked token, and failed dashboard logins, draw from a separate bucket per client address
(``auth_failures_per_minute``), so guessing tokens costs the guesser, not the database: once it is
empty, such requests are refused before the token is looked up. Each API process keeps its own
buckets, so ``evalgate serve --workers N`` allows up to N times the configured rates.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, status

from evalgate.core.settings import Settings

MAX_KEYS = 100_000
"""Buckets kept before full (idle) ones are forgotten: bounds memory under a flood of addresses."""


class RateLimiter:
    """Token buckets keyed by a string: ``burst`` requests at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {rate} and {burst}")
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - stamp) * self.rate)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may make a request (0 when it may now); takes nothing."""
        with self._lock:
            return max(0.0, (1.0 - self._level(key, self.clock())) / self.rate)

    def take(self, key: str) -> float:
        """Spend one request from ``key``'s bucket and return 0; or, when it is empty, return the
        seconds to wait (spending nothing)."""
        with self._lock:
            now = self.clock()
            level = self._level(key, now)
            if level < 1.0:
                return (1.0 - level) / self.rate
            if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
                self._forget_full(now)
            self._buckets[key] = (level - 1.0, now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: forgetting them changes nothing."""
        for key in [key for key in self._buckets if self._level(key, now) >= self.burst]:
            del self._buckets[key]


def too_many(wait: float, limit: str) -> HTTPException:
    """A 429 naming ``limit``, with ``Retry-After`` rounded up to whole seconds (at least 1)."""
    seconds = max(1, math.ceil(wait))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"rate limit exceeded: {limit}; retry in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


@dataclass
class Limits:
    """The app's two limits; ``None`` where the setting turns one off."""

    per_token: RateLimiter | None
    auth_failures: RateLimiter | None
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """Buckets sized by ``settings`` (a rate of 0 disables that limit)."""
        per_token = per_address = None
        if settings.rate_limit_per_second > 0:
            per_token = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        if settings.auth_failures_per_minute > 0:
            per_minute = settings.auth_failures_per_minute
            per_address = RateLimiter(per_minute / 60.0, max(1.0, per_minute))
        return cls(per_token, per_address, settings)

    def charge_token(self, digest: str) -> None:
        """Count one request of the token with sha256 ``digest``; 429 when its bucket is empty."""
        if self.per_token is None:
            return
        wait = self.per_token.take(digest)
        if wait > 0:
            rate, burst = self.settings.rate_limit_per_second, self.settings.rate_limit_burst
            raise too_many(wait, f"{rate:g} requests/s per token (burst {burst})")

    def check_failures(self, client: str) -> None:
        """429 when ``client`` has used up its failed-authentication budget (nothing is spent)."""
        if self.auth_failures is None:
            return
        wait = self.auth_failures.wait(client)
        if wait > 0:
            per_minute = self.settings.auth_failures_per_minute
            raise too_many(wait, f"{per_minute:g} failed authentications per minute per address")

    def record_failure(self, client: str) -> None:
        """Count one failed authentication from ``client``."""
        if self.auth_failures is not None:
            self.auth_failures.take(client)
