"""NCRONTAB validation, fire times and due rules (croniter with seconds first)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from purge.config.rules import make_rule
from purge.config.schedule import (
    FIRST_TICK_WINDOW,
    ScheduleError,
    is_due,
    next_fire_times,
    previous_fire_times,
    rules_due,
    validate,
)

UTC = timezone.utc


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 3 * * *",
        "0 */5 * * * *",
        "30 15 10 * * 1-5",
        "0 0 0 1 JAN *",
        "0 30 4 * * Sun",
        "0 0 12 1,15 * *",
        "  0 0 3 * * *  ",
    ],
)
def test_valid(expr: str) -> None:
    validate(expr)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 3 * * *", "has 5 fields"),
        ("0 0 3 * * * 2024", "has 7 fields"),
        ("", "has 0 fields"),
        ("@daily", "has 1 fields"),
        ("61 0 3 * * *", "out of range"),
        ("0 60 3 * * *", "out of range"),
        ("0 0 25 * * *", "out of range"),
        ("0 0 3 32 * *", "out of range"),
        ("0 0 3 * 13 *", "out of range"),
        ("0 0 0 30 2 *", "failed to find next date"),
        ("H 0 3 * * *", "second field 'H'"),
        ("0 0 3 L * *", "day field 'L'"),
        ("0 0 3 * * 1#2", "day-of-week field '1#2'"),
        ("0 0 3 ? * *", "day field '?'"),
        ("0 0 3 * * 5L", "day-of-week field '5L'"),
        ("0 0 3 * January *", "month field 'January'"),
        ("00:05:00", "has 1 fields"),
    ],
)
def test_invalid(expr: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        validate(expr)


def test_not_a_string() -> None:
    with pytest.raises(ScheduleError, match="not a string"):
        validate(None)  # type: ignore[arg-type]


def test_next_fire_times_seconds_first_and_strictly_after_start() -> None:
    start = datetime(2024, 1, 1, 3, 0, 0, tzinfo=UTC)
    assert next_fire_times("0 0 3 * * *", start, 3) == (
        datetime(2024, 1, 2, 3, tzinfo=UTC),
        datetime(2024, 1, 3, 3, tzinfo=UTC),
        datetime(2024, 1, 4, 3, tzinfo=UTC),
    )
    assert next_fire_times("15 * * * * *", start, 2) == (
        datetime(2024, 1, 1, 3, 0, 15, tzinfo=UTC),
        datetime(2024, 1, 1, 3, 1, 15, tzinfo=UTC),
    )
    assert len(next_fire_times("0 0 3 * * *", start)) == 5


def test_next_fire_times_converts_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    times = next_fire_times("0 0 3 * * *", datetime(2024, 1, 1, 4, 0, tzinfo=plus_two), 1)
    assert times == (datetime(2024, 1, 1, 3, tzinfo=UTC),)  # 04:00+02 is 02:00 UTC
    assert times[0].utcoffset() == timedelta(0)


def test_day_of_month_and_day_of_week_both_apply() -> None:
    # NCRONTAB ANDs them (Friday the 13th), unlike Vixie cron's OR.
    times = next_fire_times("0 0 0 13 * 5", datetime(2024, 1, 1, tzinfo=UTC), 2)
    assert times == (datetime(2024, 9, 13, tzinfo=UTC), datetime(2024, 12, 13, tzinfo=UTC))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times("0 0 3 * * *", datetime(2024, 1, 1), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_due("0 0 3 * * *", None, datetime(2024, 1, 1))


def _at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 1, 10, hour, minute, second, tzinfo=UTC)


def test_due_window_is_open_before_and_closed_after() -> None:
    daily = "0 0 3 * * *"
    assert is_due(daily, _at(2), _at(3))  # fire time == tick: due
    assert not is_due(daily, _at(3), _at(4))  # fire time == previous tick: not again
    assert not is_due(daily, _at(1), _at(2, 59, 59))
    assert is_due(daily, _at(0), _at(23))


def test_due_without_previous_tick_uses_a_window() -> None:
    daily = "0 0 3 * * *"
    assert is_due(daily, None, _at(3, 0, 30))
    # The window (tick - FIRST_TICK_WINDOW, tick] is open at its start.
    assert is_due(daily, None, _at(3) + FIRST_TICK_WINDOW - timedelta(seconds=1))
    assert not is_due(daily, None, _at(3) + FIRST_TICK_WINDOW)
    assert not is_due(daily, None, _at(2, 59, 59))


def test_previous_tick_after_tick_is_an_error() -> None:
    with pytest.raises(ValueError, match="after this tick"):
        is_due("0 0 3 * * *", _at(4), _at(3))


def test_rules_due() -> None:
    always = make_rule("always", filters=["a:.*"])
    nightly = make_rule("nightly", filters=["a:.*"], schedule="0 0 3 * * *")
    weekly = make_rule("weekly", filters=["a:.*"], schedule="0 0 3 * * Sun")
    rules = (always, nightly, weekly)
    # 2024-01-10 is a Wednesday; 2024-01-14 a Sunday.
    assert [r.name for r in rules_due(rules, _at(2), _at(3))] == ["always", "nightly"]
    assert [r.name for r in rules_due(rules, _at(3), _at(4))] == ["always"]
    sunday = datetime(2024, 1, 14, 3, tzinfo=UTC)
    assert [r.name for r in rules_due(rules, sunday - timedelta(hours=1), sunday)] == [
        "always",
        "nightly",
        "weekly",
    ]


def test_previous_fire_times_are_at_or_before_the_end_newest_first() -> None:
    end = datetime(2024, 6, 5, 3, 0, 0, tzinfo=timezone.utc)  # a Wednesday, on a fire time
    fires = previous_fire_times("0 0 3 * * *", end, 2)
    assert fires == (end, end - timedelta(days=1))
    # both day-of-month and day-of-week must match (NCRONTAB), not either
    [fire] = previous_fire_times("0 0 3 1 * Mon", end, 1)
    assert fire.day == 1 and fire.weekday() == 0 and fire < end
