"""The shared adaptive limit: AIMD growth, halving on 429, Retry-After pauses, rate-limit header."""

from __future__ import annotations

import asyncio

import pytest

from purge.registry.throttle import (
    DEFAULT_CEILING,
    MAX_PAUSE_SECONDS,
    AdaptiveLimiter,
    AimdController,
)


def grow(ctl: AimdController, rounds: int, *, latency: float = 0.01) -> None:
    now = 0.0
    for _ in range(rounds):
        for _ in range(ctl.limit):
            now += latency
            ctl.on_success(latency=latency, now=now, in_flight=ctl.limit - 1)


def test_default_ceiling_and_start() -> None:
    ctl = AimdController()
    assert ctl.ceiling == DEFAULT_CEILING
    assert 1 <= ctl.limit < DEFAULT_CEILING


def test_grows_about_one_slot_per_round_while_fast_and_busy() -> None:
    ctl = AimdController(100, start=4)
    grow(ctl, 5)
    assert 8 <= ctl.limit <= 10


def test_never_exceeds_the_ceiling() -> None:
    ctl = AimdController(6, start=2)
    grow(ctl, 50)
    assert ctl.limit == 6


def test_does_not_grow_when_idle() -> None:
    ctl = AimdController(100, start=8)
    for i in range(200):
        ctl.on_success(latency=0.01, now=i * 0.01, in_flight=0)
    assert ctl.limit == 8


def test_does_not_grow_when_answers_turn_slow() -> None:
    ctl = AimdController(100, start=8)
    ctl.on_success(latency=0.01, now=0.0, in_flight=7)  # sets the baseline
    before = ctl.limit
    for i in range(100):
        ctl.on_success(latency=0.5, now=1 + i, in_flight=7)
    assert ctl.limit == before


def test_429_halves_and_pauses_for_retry_after() -> None:
    ctl = AimdController(64, start=32)
    ctl.on_throttled(retry_after=2.0, now=10.0)
    assert ctl.limit == 16
    assert ctl.paused_until == pytest.approx(12.0)


def test_burst_of_429s_in_one_round_halves_once() -> None:
    ctl = AimdController(64, start=32)
    ctl.on_success(latency=0.2, now=9.0, in_flight=0)
    for k in range(10):
        ctl.on_throttled(retry_after=1.0, now=10.0 + k * 0.001)
    assert ctl.limit == 16
    ctl.on_throttled(retry_after=1.0, now=11.0)  # a later round: a new signal
    assert ctl.limit == 8


def test_limit_never_drops_below_one() -> None:
    ctl = AimdController(4, start=4)
    for k in range(20):
        ctl.on_throttled(retry_after=0, now=float(k))
    assert ctl.limit == 1


def test_retry_after_is_bounded() -> None:
    ctl = AimdController()
    ctl.on_throttled(retry_after=3600, now=0.0)
    assert ctl.paused_until == MAX_PAUSE_SECONDS


def test_low_remaining_header_shrinks_then_pauses() -> None:
    ctl = AimdController(64, start=32)
    ctl.on_success(latency=0.01, now=0.0, remaining=5.0, in_flight=31)
    assert ctl.limit == 5
    ctl.on_success(latency=0.01, now=1.0, remaining=0.5, in_flight=4)
    assert ctl.limit == 1
    assert ctl.paused_until == pytest.approx(2.0)


def test_bad_ceiling_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AimdController(0)


async def test_limiter_caps_in_flight_requests() -> None:
    limiter = AdaptiveLimiter(3, start=3)
    active = 0
    peak = 0

    async def call() -> None:
        nonlocal active, peak
        started = await limiter.acquire()
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        await limiter.record(started, release=True)

    await asyncio.gather(*(call() for _ in range(20)))
    assert peak == 3
    assert limiter.stats.peak_in_flight == 3
    assert limiter.stats.requests == 20
    assert limiter.in_flight == 0


async def test_limiter_pauses_everyone_after_a_429() -> None:
    limiter = AdaptiveLimiter(4, start=4)
    started = await limiter.acquire()
    await limiter.record(started, throttled=True, retry_after=0.2, release=True)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    again = await limiter.acquire()
    waited = loop.time() - t0
    await limiter.record(again, release=True)
    assert waited >= 0.15
    assert limiter.stats.throttled == 1
    assert limiter.controller.limit == 2
