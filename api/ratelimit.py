"""Per-token and per-address rate limits: token buckets, in Redis when it is configured, else in-process.

    EVALGATE_RATE_LIMIT_PER_SECOND=100 EVALGATE_RATE_LIMIT_BURST=500 evalgate serve
    EVALGATE_REDIS_URL=redis://127.0.0.1:6379/0 evalgate serve --workers 4     # one limit for all four

Each verified API token has a bucket keyed by the token's id (never its secret) holding ``burst``
requests and refilled at ``rate_limit_per_second``; a request that finds it empty gets 429 with
``Retry-After`` (whole seconds until the next request would pass). Requests with an unknown or revoked
token, and failed dashboard logins, draw from a separate bucket per client address
(``auth_failures_per_minute``), so guessing tokens costs the guesser, not the database: once it is
empty, such requests are refused before the token is looked up.

Without ``EVALGATE_REDIS_URL`` each API process keeps its own buckets, so ``evalgate serve --workers N``
allows up to N times the configured rates. With it, every process using that Redis shares one bucket per
token and per address: a Lua script refills and spends a bucket atomically on the Redis server, by the
server's clock, and lets an idle bucket expire once it would be full again. When Redis is down or
unreachable the limits fail open to each process's own buckets (as without Redis), with a warning logged
at most once a minute, never an error answer; Redis is tried again a second later, and its limits are
shared again as soon as it answers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis
from fastapi import HTTPException, status
from redis.backoff import NoBackoff
from redis.retry import Retry

from evalgate.core.settings import Settings

MAX_KEYS = 100_000
"""Buckets kept before full (idle) ones are forgotten: bounds memory under a flood of addresses."""
REDIS_TIMEOUT_SECONDS = 0.25
"""Longest a request waits on Redis (connecting or answering) before its limit fails open."""
REDIS_RETRY_SECONDS = 1.0
"""After Redis failed, how long requests skip it (limiting in-process) before it is tried again."""
WARNING_INTERVAL_SECONDS = 60.0
"""At most one warning about an unreachable Redis per this many seconds, per process."""
KEY_PREFIX = "evalgate:ratelimit"
logger = logging.getLogger(__name__)

TOKEN_BUCKET = """
local rate, burst, spend = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local level = burst
if state[1] and state[2] then
  level = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
end
if level < 1 then
  return string.format('%.6f', (1 - level) / rate)
end
if spend == 1 then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', level - 1), 'stamp', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - level + 1) / rate * 1000) + 1000)
end
return '0'
"""
"""One token bucket (a hash of ``tokens`` and ``stamp``): refill it for the time since ``stamp``, then,
when it holds a whole request, spend one if ARGV[3] is 1 and answer '0'; else answer the seconds until
it will. Run by ``EVALSHA``, so the read and the write of one bucket are atomic."""


class Buckets(Protocol):
    """Token buckets keyed by a string."""

    def take(self, key: str) -> float:
        """Spend one request from ``key``'s bucket and return 0; or, when it is empty, return the seconds
        to wait (spending nothing)."""
        ...

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may make a request (0 when it may now); takes nothing."""
        ...


class RateLimiter:
    """In-process token buckets keyed by a string: ``burst`` requests at once, refilled at ``rate`` per
    second."""

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


class RedisHealth:
    """Whether this process should use Redis now; logs its outages (once a minute) and its return."""

    def __init__(self, where: str, clock: Callable[[], float] = time.monotonic):
        self.where, self.clock = where, clock
        self._down_until = 0.0
        self._down = False
        self._warned_at: float | None = None
        self._lock = threading.Lock()

    def usable(self) -> bool:
        """False for ``REDIS_RETRY_SECONDS`` after a failure, so an outage costs no request a timeout."""
        with self._lock:
            return self.clock() >= self._down_until

    def failed(self, error: Exception) -> None:
        """Redis did not answer: skip it for a while; warn unless a warning went out within a minute."""
        with self._lock:
            now = self.clock()
            self._down, self._down_until = True, now + REDIS_RETRY_SECONDS
            if self._warned_at is not None and now - self._warned_at < WARNING_INTERVAL_SECONDS:
                return
            self._warned_at = now
        logger.warning(
            "rate limits: Redis at %s unreachable (%s: %s); each API process limits on its own until it "
            "answers again",
            self.where,
            type(error).__name__,
            error,
        )

    def answered(self) -> None:
        """Redis answered: note its return after an outage."""
        if not self._down:
            return
        with self._lock:
            back, self._down = self._down, False
        if back:
            logger.warning("rate limits: Redis at %s answers again; the limits are shared again", self.where)


class RedisBuckets:
    """Token buckets held in Redis under ``evalgate:ratelimit:<name>:<key>``, shared by every process
    using the same Redis; ``fallback`` (in-process) while Redis cannot be reached."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        rate: float,
        burst: float,
        health: RedisHealth,
        fallback: Buckets | None = None,
    ):
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {rate} and {burst}")
        self.name, self.rate, self.burst, self.health = name, rate, burst, health
        self.fallback = fallback or RateLimiter(rate, burst)
        self._script = client.register_script(TOKEN_BUCKET)

    def key(self, key: str) -> str:
        """The Redis key of ``key``'s bucket."""
        return f"{KEY_PREFIX}:{self.name}:{key}"

    def take(self, key: str) -> float:
        """Spend one request from ``key``'s bucket (0) or the seconds to wait, as ``RateLimiter.take``."""
        return self._run(key, spend=True)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may make a request, as ``RateLimiter.wait``."""
        return self._run(key, spend=False)

    def _run(self, key: str, spend: bool) -> float:
        if self.health.usable():
            try:
                answer = self._script(keys=[self.key(key)], args=[self.rate, self.burst, int(spend)])
            except (redis.RedisError, OSError) as error:
                self.health.failed(error)
            else:
                self.health.answered()
                return float(answer)
        return self.fallback.take(key) if spend else self.fallback.wait(key)


def redis_client(url: str) -> redis.Redis:
    """A client of ``url`` that gives up quickly (``REDIS_TIMEOUT_SECONDS``) and retries a command once
    at once (a connection dropped by a Redis restart is replaced by a new one)."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )


def redis_location(client: redis.Redis) -> str:
    """``host:port/db`` (or the socket path) of the client's server: the URL without its password."""
    options = client.connection_pool.connection_kwargs
    if "path" in options:
        return str(options["path"])
    return f"{options.get('host', 'localhost')}:{options.get('port', 6379)}/{options.get('db', 0)}"


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
    """The app's two limits; ``None`` where the setting turns one off. ``shared``: they live in Redis (a
    check is a network round trip, so callers keep it off the event loop)."""

    per_token: Buckets | None
    auth_failures: Buckets | None
    settings: Settings
    shared: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """Buckets sized by ``settings`` (a rate of 0 disables that limit), in Redis if it is set."""
        make = _bucket_factory(settings)
        per_token = per_address = None
        if settings.rate_limit_per_second > 0:
            per_token = make("token", settings.rate_limit_per_second, settings.rate_limit_burst)
        if settings.auth_failures_per_minute > 0:
            per_minute = settings.auth_failures_per_minute
            per_address = make("auth-failures", per_minute / 60.0, max(1.0, per_minute))
        return cls(per_token, per_address, settings, shared=settings.redis_url is not None)

    def charge_token(self, token_id: int) -> None:
        """Count one request of the token with id ``token_id``; 429 when its bucket is empty."""
        if self.per_token is None:
            return
        wait = self.per_token.take(str(token_id))
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


def _bucket_factory(settings: Settings) -> Callable[[str, float, float], Buckets]:
    """``make(name, rate, burst)``: in-process buckets, or Redis ones sharing one client and its health."""
    if settings.redis_url is None:
        return lambda _name, rate, burst: RateLimiter(rate, burst)
    client = redis_client(settings.redis_url)
    health = RedisHealth(redis_location(client))
    return lambda name, rate, burst: RedisBuckets(client, name, rate, burst, health)
