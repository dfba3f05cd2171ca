"""Test controls: added latency, a token-bucket rate limit, injected failures, a request log.

They live in one aiohttp middleware so that every request, whatever its handler, is delayed,
throttled, failed and logged the same way. The log is a plain list of small dicts: appending
is the cheapest thing Python does, which matters at thousands of requests per second.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RATE_HEADER = "x-ms-ratelimit-remaining-calls-per-second"
#: ACR's documented operation limits per minute by SKU: (reads, writes).
SKU_LIMITS_PER_MINUTE = {
    "basic": (1000, 100),
    "standard": (3000, 500),
    "premium": (10000, 2000),
}


def operation_kind(method: str, path: str) -> str:
    """ "read" or "write", as ACR counts them: a pull, listing or token request is a read;
    a push, delete or attribute change is a write."""
    if method in ("GET", "HEAD", "OPTIONS") or path.startswith("/oauth2/"):
        return "read"
    return "write"


class TokenBucket:
    """`rate` requests per second, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate limit must be > 0 requests per second, got {rate}")
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> bool:
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def remaining(self) -> float:
        self._refill()
        return max(self.tokens, 0.0)

    def retry_after(self) -> int:
        return max(1, math.ceil((1.0 - self.tokens) / self.rate))


@dataclass
class Fault:
    method: str
    path_regex: re.Pattern[str]
    status: int | None
    drop: bool
    count: int
    delay: float
    #: Matching requests let through before the fault fires (e.g. fail the second page only).
    skip: int = 0
    #: With drop: the registry acts on the request first, then the answer is lost (a reply
    #: dropped on the way back, as a load balancer or a broken connection loses it).
    after_acting: bool = False

    def matches(self, method: str, path: str) -> bool:
        if (
            self.skip > 0
            and (self.method == "*" or self.method.upper() == method)
            and self.path_regex.search(path) is not None
        ):
            self.skip -= 1
            return False
        return (
            self.count > 0
            and (self.method == "*" or self.method.upper() == method)
            and self.path_regex.search(path) is not None
        )


class Controls:
    def __init__(self) -> None:
        self.latency = 0.0
        self.buckets: dict[str, TokenBucket | None] = {"read": None, "write": None}
        self.faults: list[Fault] = []
        self.log: list[dict[str, Any]] = []

    def set_rate_limit(self, rps: float | None) -> None:
        """The same limit for reads and for writes (each its own bucket); None: no limit."""
        self.set_rate_limits(rps, rps)

    def set_rate_limits(self, reads: float | None, writes: float | None) -> None:
        """Requests per second for each bucket; None leaves that kind unlimited."""
        self.buckets = {
            "read": TokenBucket(reads) if reads else None,
            "write": TokenBucket(writes) if writes else None,
        }

    def set_sku(self, sku: str) -> None:
        """ACR's documented per-minute read and write limits for `sku`, as per-second buckets."""
        try:
            reads, writes = SKU_LIMITS_PER_MINUTE[sku.lower()]
        except KeyError:
            raise ValueError(
                f"sku must be one of {sorted(SKU_LIMITS_PER_MINUTE)}, got {sku!r}"
            ) from None
        self.set_rate_limits(reads / 60, writes / 60)

    def limits(self) -> dict[str, float | None]:
        return {k: (b.rate if b else None) for k, b in self.buckets.items()}

    def inject(
        self,
        method: str = "*",
        path_regex: str = ".*",
        status: int | None = 503,
        drop: bool = False,
        count: int = 1,
        delay: float = 0.0,
        skip: int = 0,
        after_acting: bool = False,
    ) -> None:
        if status is None and not drop and delay <= 0:
            raise ValueError("a fault needs a status, drop=True or a delay > 0")
        if status is not None and not 100 <= status <= 599:
            raise ValueError(f"fault status must be an HTTP status 100-599, got {status}")
        if skip < 0:
            raise ValueError(f"fault skip must be >= 0 requests, got {skip}")
        if after_acting and not drop:
            raise ValueError("after_acting needs drop=True: the answer of an acted request is lost")
        self.faults.append(
            Fault(method, re.compile(path_regex), status, drop, count, delay, skip, after_acting)
        )

    def remaining_header(self, kind: str = "write") -> str | None:
        bucket = self.buckets[kind]
        return f"{bucket.remaining():.6f}" if bucket else None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = request.raw_path
        path = unquote(raw.split("?", 1)[0])
        if path.startswith("/_emulator/"):
            return await handler(request)
        started = time.time()
        entry = {
            "method": request.method,
            "path": path,
            "query": request.query_string,
            "status": 0,
            "time": started,
        }
        self.log.append(entry)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        for fault in self.faults:
            if fault.matches(request.method, path):
                fault.count -= 1
                if fault.delay > 0:
                    await asyncio.sleep(fault.delay)
                if fault.drop:
                    if fault.after_acting:
                        await handler(request)
                    entry["status"] = -1  # connection dropped, no answer
                    if request.transport is not None:
                        request.transport.abort()
                    raise asyncio.CancelledError()
                if fault.status is not None:
                    entry["status"] = fault.status
                    return web.json_response(
                        {"errors": [{"code": "INJECTED", "message": "injected fault"}]},
                        status=fault.status,
                    )
                break
        bucket = self.buckets[operation_kind(request.method, path)]
        if bucket is not None and not bucket.take():
            entry["status"] = 429
            return web.json_response(
                {"errors": [{"code": "TOOMANYREQUESTS", "message": "too many requests"}]},
                status=429,
                headers={"Retry-After": str(bucket.retry_after()), RATE_HEADER: "0.000000"},
            )
        response = await handler(request)
        entry["status"] = response.status
        if bucket is not None:  # what is left in the bucket this request drew from
            response.headers[RATE_HEADER] = f"{bucket.remaining():.6f}"
        return response
