"""One adaptive request limit shared by every call of a registry client.

ACR throttles per registry, not per connection, so all requests of a run share one AIMD limit:
it grows by about one slot per round of fast, unthrottled answers, halves on a 429, pauses
everyone for `Retry-After`, and shrinks toward what `x-ms-ratelimit-remaining-calls-per-second`
says is left. `AimdController` is the pure decision logic (clock passed in, unit-testable);
`AdaptiveLimiter` applies it to asyncio tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

#: Default ceiling when the caller sets none. ACR's per-registry write limits (about 2-33 deletes
#: per second by SKU) are reached well below this with ~100 ms round trips; more only queues.
DEFAULT_CEILING = 32
#: Starting limit: below the ceiling, so a throttled registry is not hit by a burst at start.
DEFAULT_START = 8
#: Longest pause we accept from a Retry-After header, so a run can still stop within budget.
MAX_PAUSE_SECONDS = 30.0
#: A remaining-calls value at or below this pauses new requests until ACR's window rolls over.
LOW_REMAINING = 1.0
#: An answer slower than this multiple of the fastest seen counts as congestion: no growth.
SLOW_FACTOR = 3.0


@dataclass
class ThrottleStats:
    """Counters for reports and benchmarks."""

    requests: int = 0
    throttled: int = 0
    peak_in_flight: int = 0
    #: summed over waiting tasks (two tasks waiting 1 s add 2 s)
    paused_seconds: float = 0.0


class AimdController:
    """Pure AIMD state machine: feed it outcomes, read `limit` and `paused_until`."""

    def __init__(self, ceiling: int | None = None, *, start: int | None = None) -> None:
        if ceiling is not None and ceiling < 1:
            raise ValueError(f"concurrency must be at least 1, got {ceiling}")
        self.ceiling = ceiling if ceiling is not None else DEFAULT_CEILING
        first = start if start is not None else DEFAULT_START
        self._limit = float(max(1, min(self.ceiling, first)))
        self.paused_until = 0.0
        self._fastest: float | None = None
        self._last_decrease = float("-inf")

    @property
    def limit(self) -> int:
        """Requests allowed in flight now: never above the ceiling, never below one."""
        return max(1, min(self.ceiling, int(self._limit)))

    def on_success(
        self, *, latency: float, now: float, remaining: float | None = None, in_flight: int = 0
    ) -> None:
        """An answer that was not a 429 (errors included: they are not throttling)."""
        if self._fastest is None or latency < self._fastest:
            self._fastest = latency
        if remaining is not None and self._remaining_low(remaining, now):
            return
        slow = latency > SLOW_FACTOR * max(self._fastest, 0.001)
        # Grow only when the limit is actually in use: idle headroom proves nothing.
        if not slow and in_flight + 1 >= self.limit:
            self._limit = min(float(self.ceiling), self._limit + 1.0 / self._limit)

    def on_throttled(self, *, retry_after: float | None, now: float) -> None:
        """A 429: halve once per round (a burst of 429s from one round is one signal) and pause."""
        if now - self._last_decrease >= self._round(now):
            self._limit = max(1.0, self._limit / 2)
            self._last_decrease = now
        pause = min(MAX_PAUSE_SECONDS, retry_after if retry_after is not None else 1.0)
        self.paused_until = max(self.paused_until, now + max(0.0, pause))

    def _remaining_low(self, remaining: float, now: float) -> bool:
        """Slow down before ACR says 429: shrink to what is left; pause when nothing is left."""
        if remaining <= LOW_REMAINING:
            self.paused_until = max(self.paused_until, now + 1.0)
            self._limit = max(1.0, min(self._limit, 1.0))
            return True
        if remaining < self._limit:
            self._limit = max(1.0, float(int(remaining)))
            return True
        return False

    def _round(self, now: float) -> float:
        """A round trip, or a tenth of a second before any answer was seen."""
        return max(self._fastest or 0.1, 0.05)


#: Set while a task holds a slot through `AdaptiveLimiter.hold()`: its requests take no other.
_holding: contextvars.ContextVar[bool] = contextvars.ContextVar("purge_slot_held", default=False)


class AdaptiveLimiter:
    """The one request limit of a registry client.

    Each request takes a slot (`acquire`, then `record(..., release=True)`, from the pipeline's
    ThrottlePolicy), unless its task holds one already (`hold()`, taken by the executor around
    an item's unlock and delete, so that the run's deadline is checked once the slot is granted,
    just before the request).
    """

    def __init__(
        self,
        ceiling: int | None = None,
        *,
        start: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.controller = AimdController(ceiling, start=start)
        self.stats = ThrottleStats()
        self._clock = clock
        self._in_flight = 0
        self._changed = asyncio.Condition()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _wake(self) -> None:
        """Wake as many waiters as there are free slots (the caller holds the condition).

        notify_all would wake every waiting task on every answer: with thousands of deletions
        queued that is quadratic work on the event loop. A woken task that finds the registry
        paused waits with a timeout, so the pause's end needs no wake-up of its own.
        """
        free = self.controller.limit - self._in_flight
        if free > 0:
            self._changed.notify(free)

    def now(self) -> float:
        return self._clock()

    @property
    def holding(self) -> bool:
        """Does the current task hold a slot (so its requests must not take another)?"""
        return _holding.get()

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold one slot for several requests; nested holds in the same task share it."""
        if _holding.get():
            yield
            return
        await self.acquire()
        token = _holding.set(True)
        try:
            yield
        finally:
            _holding.reset(token)
            async with self._changed:
                self._in_flight -= 1
                self._wake()

    async def acquire(self) -> float:
        """Wait for a free slot and for any pause to end; returns the start time."""
        async with self._changed:
            while True:
                now = self._clock()
                wait = self.controller.paused_until - now
                if wait > 0:
                    self.stats.paused_seconds += wait
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout=wait)
                    continue
                if self._in_flight < self.controller.limit:
                    break
                await self._changed.wait()
            self._in_flight += 1
            self.stats.requests += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self._in_flight)
            return self._clock()

    async def record(
        self,
        started: float,
        *,
        throttled: bool = False,
        retry_after: float | None = None,
        remaining: float | None = None,
        release: bool = False,
    ) -> None:
        """Record how a request went and wake waiters (the limit may have changed); `release`
        frees the request's own slot (a slot held with `hold()` stays held)."""
        async with self._changed:
            if release:
                self._in_flight -= 1
            now = self._clock()
            if throttled:
                self.stats.throttled += 1
                self.controller.on_throttled(retry_after=retry_after, now=now)
            else:
                self.controller.on_success(
                    latency=now - started, now=now, remaining=remaining, in_flight=self._in_flight
                )
            self._wake()
