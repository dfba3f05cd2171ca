"""NCRONTAB schedules (six fields, seconds first) on croniter: validate, next runs, due rules.

Azure Functions reads `PURGE_SCHEDULE` as NCRONTAB; per-rule schedules use the same syntax so
that one mental model covers both. croniter alone would accept five or seven fields and its own
extensions (`L`, `#`, `H`), which Azure rejects, so those are refused here first.
NCRONTAB requires BOTH day-of-month and day-of-week to match (croniter's `day_or=False`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import regex
from croniter import croniter

if TYPE_CHECKING:
    from purge.config.rules import Rule

FIELD_NAMES = ("second", "minute", "hour", "day", "month", "day-of-week")

#: When the previous tick is unknown (first run, or the host lost its schedule status), a rule
#: is due if its schedule fired within this window before the tick. It absorbs a late or cold
#: start; a timer firing more often than this should pass the previous tick, or such rules
#: may run on several consecutive ticks (harmless: purging is idempotent).
FIRST_TICK_WINDOW = timedelta(minutes=5)

_FORM = "expected 6 fields: second minute hour day month day-of-week, e.g. '0 0 3 * * *'"
_NUMERIC_FIELD = regex.compile(r"[0-9*/,\-]+", regex.ASCII)
_NAMED_FIELD = regex.compile(r"[0-9A-Za-z*/,\-]+", regex.ASCII)


class ScheduleError(ValueError):
    """An NCRONTAB expression is malformed; the message says which part and why."""


def validate(expr: str) -> None:
    """Raise ScheduleError unless `expr` is a six-field NCRONTAB expression that ever fires."""
    if not isinstance(expr, str):
        raise ScheduleError(f"{expr!r} is not a string; {_FORM}")
    fields = expr.split()
    if len(fields) != 6:
        raise ScheduleError(f"{expr!r} has {len(fields)} fields; {_FORM}")
    for index, (name, value) in enumerate(zip(FIELD_NAMES, fields, strict=True)):
        allowed = _NAMED_FIELD if index >= 4 else _NUMERIC_FIELD
        names_ok = all(len(word) == 3 for word in regex.findall(r"[A-Za-z]+", value))
        if not allowed.fullmatch(value) or not names_ok:
            raise ScheduleError(
                f"{expr!r}: {name} field {value!r} has characters NCRONTAB does not allow "
                "(digits, '*', ',', '-', '/', and month/day names only)"
            )
    try:
        _iterator(expr, datetime(2000, 1, 1, tzinfo=timezone.utc)).get_next(datetime)
    except (ValueError, KeyError, TypeError) as exc:  # croniter's errors derive from ValueError
        raise ScheduleError(f"{expr!r}: {exc}") from exc


def next_fire_times(expr: str, start: datetime, n: int = 5) -> tuple[datetime, ...]:
    """The next `n` fire times strictly after `start`, as UTC-aware datetimes."""
    validate(expr)
    iterator = _iterator(expr, _utc(start, "start"))
    return tuple(iterator.get_next(datetime) for _ in range(n))


def previous_fire_times(expr: str, end: datetime, n: int = 1) -> tuple[datetime, ...]:
    """The last `n` fire times at or before `end`, newest first, as UTC-aware datetimes."""
    validate(expr)
    iterator = _iterator(expr, _utc(end, "end") + timedelta(seconds=1))
    return tuple(iterator.get_prev(datetime) for _ in range(n))


def is_due(expr: str, previous_tick: datetime | None, tick: datetime) -> bool:
    """True when `expr` fires in (previous_tick, tick]; see FIRST_TICK_WINDOW for None."""
    tick = _utc(tick, "tick")
    since = (
        tick - FIRST_TICK_WINDOW if previous_tick is None else _utc(previous_tick, "previous_tick")
    )
    if since > tick:
        raise ValueError(f"previous tick {since.isoformat()} is after this tick {tick.isoformat()}")
    fire: datetime = _iterator(expr, since).get_next(datetime)
    return fire <= tick


def rules_due(
    rules: Iterable[Rule], previous_tick: datetime | None, tick: datetime
) -> tuple[Rule, ...]:
    """Rules to run on this tick: those without a schedule, and those whose schedule fired."""
    return tuple(r for r in rules if r.schedule is None or is_due(r.schedule, previous_tick, tick))


def _iterator(expr: str, start: datetime) -> croniter:
    return croniter(expr, start, second_at_beginning=True, day_or=False)


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(timezone.utc)
