"""`purge_timer`: run the rules due on this tick within the timer's budget.

Every entry point loads and validates the settings first: an invalid configuration runs nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from purge.config.settings import ConfigError, load_settings
from purge.isotime import parse_utc

if TYPE_CHECKING:
    from purge.report import Report

from purge.functions.common import log, log_report, timer_budget

#: Before this year a schedule status time is the host's "never ran" placeholder (0001-01-01).
_PLACEHOLDER_YEAR = 2000


def parse_status_time(value: Any) -> datetime | None:
    """A time from the timer's schedule status, as aware UTC; None when absent or a placeholder.

    The host writes ISO 8601, sometimes with seven fraction digits or without an offset (then
    it is UTC: per-rule schedules are evaluated in UTC, like PURGE_SCHEDULE without
    WEBSITE_TIME_ZONE).
    """
    parsed = parse_utc(value)
    if parsed is None or parsed.year < _PLACEHOLDER_YEAR:
        return None
    return parsed


def previous_tick(
    schedule: str, schedule_status: Mapping[str, Any] | None, tick: datetime
) -> datetime:
    """The start of this tick's window (previous tick, tick] for per-rule schedules.

    With `use_monitor` the host passes `schedule_status["Last"]`, the previous run. Without
    it (first run, local runs, a lost status) assume the timer ran on its own schedule: the
    window then reaches back to the PURGE_SCHEDULE fire time before the one that fired now.
    """
    last = None
    for key, value in (schedule_status or {}).items():
        if str(key).lower() == "last":
            last = parse_status_time(value)
    if last is not None and last < tick:
        return last
    from purge.config.schedule import (
        previous_fire_times,  # lazy: keeps importing function_app cheap
    )

    # [0] is the fire time at or just before this tick, [1] the one before it.
    return previous_fire_times(schedule, tick, 2)[1]


@dataclass(frozen=True)
class TimerOutcome:
    """What one timer tick did, for logs and tests."""

    status: str  # "invalid-configuration" | "nothing-due" | "ran"
    previous_tick: datetime | None = None
    tick: datetime | None = None
    rules: tuple[str, ...] = ()
    report: Report | None = None
    errors: tuple[str, ...] = ()


async def run_timer_tick(
    environ: Mapping[str, str],
    *,
    past_due: bool,
    schedule_status: Mapping[str, Any] | None,
    function_timeout: float | None,
    now: datetime | None = None,
) -> TimerOutcome:
    """One `purge_timer` tick: validate, pick the due rules, run them within budget, log."""
    tick = now or datetime.now(timezone.utc)
    try:
        config = load_settings(environ, require_schedule=True)
    except ConfigError as exc:
        log.error("purge_timer: invalid configuration, nothing deleted: %s", "; ".join(exc.errors))
        return TimerOutcome("invalid-configuration", tick=tick, errors=tuple(exc.errors))
    schedule = config.schedule or ""  # require_schedule: always set here
    since = previous_tick(schedule, schedule_status, tick)
    if past_due:
        log.warning(
            "purge_timer: this tick is past due (the host missed its time); running the rules "
            "due since the previous run at %s",
            since.isoformat(),
        )
    from purge.config.schedule import rules_due

    due = tuple(rules_due(config.rules, since, tick))
    if not due:
        log.info(
            "purge_timer: no rule is due in (%s, %s]; nothing to do",
            since.isoformat(),
            tick.isoformat(),
        )
        return TimerOutcome("nothing-due", previous_tick=since, tick=tick)
    budget = timer_budget(config.time_budget, function_timeout)
    log.info(
        "purge_timer: running %s (window %s .. %s, budget %gs)",
        ", ".join(rule.name for rule in due),
        since.isoformat(),
        tick.isoformat(),
        budget,
    )
    from purge.history.journal import run_recorded
    from purge.service import is_dry_run, run_purge

    report = await run_recorded(
        config.history,
        registry=config.connection.login_server,
        source="timer",
        dry_run=is_dry_run(config, None),
        run=functools.partial(
            run_purge, config, rules=due, budget_seconds=budget, now=tick, progress=log.info
        ),
        rules=config.rules,
        prune=True,
    )
    log_report(report, "purge_timer")
    names = tuple(rule.name for rule in due)
    return TimerOutcome("ran", previous_tick=since, tick=tick, rules=names, report=report)
