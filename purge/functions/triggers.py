"""What each Azure Functions trigger does, free of azure.functions so it is testable anywhere.

function_app.py only turns trigger objects into these calls and their results into responses.
Every entry point loads and validates the settings first: an invalid configuration runs nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from purge import __version__
from purge.config.settings import ConfigError, load_settings
from purge.functions.http import ApiResponse, BadRequest, error_response, parse_purge_request
from purge.isotime import parse_utc
from purge.registry.protocol import RegistryError

if TYPE_CHECKING:
    from purge.config.settings import Config
    from purge.report import Report

log = logging.getLogger("purge.functions.triggers")

#: HTTP answers must come before Azure's 230 s front-end timeout; leave room for the response.
HTTP_BUDGET_CAP_SECONDS = 200.0
#: Stop this long before host.json's functionTimeout so the report is still logged.
TIMEOUT_MARGIN_SECONDS = 60.0
#: Timer budget when neither PURGE_TIME_BUDGET nor a bounded functionTimeout says otherwise
#: (10 minutes, the Consumption plan's maximum, minus the margin).
DEFAULT_TIMER_BUDGET_SECONDS = 540.0
#: Application Insights cuts trace messages at 32 KiB: log long reports in parts below that.
LOG_PART_CHARS = 30_000
#: Before this year a schedule status time is the host's "never ran" placeholder (0001-01-01).
_PLACEHOLDER_YEAR = 2000


# --- budgets ------------------------------------------------------------------------------


def parse_function_timeout(value: str | None) -> float | None:
    """Seconds of host.json's `functionTimeout` ("[d.]hh:mm:ss"); None when unbounded/absent."""
    if value is None or value.strip() in ("", "-1"):
        return None
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?", value.strip())
    if not match:
        raise ValueError(f"host.json functionTimeout {value!r} is not [d.]hh:mm:ss or -1")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def read_function_timeout(host_json: Path) -> float | None:
    """functionTimeout from host.json; None when the file or the setting is absent."""
    try:
        data = json.loads(host_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    value = data.get("functionTimeout")
    return parse_function_timeout(value if isinstance(value, str) else None)


def timer_budget(configured: float | None, function_timeout: float | None) -> float:
    """PURGE_TIME_BUDGET, never past functionTimeout minus a margin (the host kills the run)."""
    limit = None
    if function_timeout is not None:
        limit = max(function_timeout - TIMEOUT_MARGIN_SECONDS, function_timeout / 2)
    if configured is None:
        return limit if limit is not None else DEFAULT_TIMER_BUDGET_SECONDS
    return min(configured, limit) if limit is not None else configured


def http_budget(configured: float | None) -> float:
    """PURGE_TIME_BUDGET capped so that the HTTP answer beats the 230 s front-end limit."""
    if configured is None:
        return HTTP_BUDGET_CAP_SECONDS
    return min(configured, HTTP_BUDGET_CAP_SECONDS)


# --- ticks --------------------------------------------------------------------------------


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

    due = tuple(rule.name for rule in rules_due(config.rules, since, tick))
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
        ", ".join(due),
        since.isoformat(),
        tick.isoformat(),
        budget,
    )
    from purge.service import run_purge

    report = await run_purge(
        config, rule_names=due, budget_seconds=budget, now=tick, progress=log.info
    )
    log_report(report, "purge_timer")
    return TimerOutcome("ran", previous_tick=since, tick=tick, rules=due, report=report)


def log_report(report: Report, source: str) -> None:
    """One summary line (stable prefix, for queries), then the JSON report in parts."""
    level = logging.INFO if report.complete else logging.WARNING
    log.log(level, "purge summary: %s", report.summary_line())
    if not report.complete:
        log.warning(
            "%s: the time budget ran out; the next run continues where this one ended", source
        )
    for part in report_log_parts(json.dumps(report.to_dict(), default=str)):
        log.info("purge report %s", part)


def report_log_parts(text: str, limit: int = LOG_PART_CHARS) -> list[str]:
    """Split a report into numbered parts that each fit one Application Insights trace."""
    chunks = [text[start : start + limit] for start in range(0, len(text), limit)] or [""]
    if len(chunks) == 1:
        return chunks
    return [f"[{index}/{len(chunks)}] {chunk}" for index, chunk in enumerate(chunks, 1)]


# --- HTTP ---------------------------------------------------------------------------------


async def run_http_purge(
    environ: Mapping[str, str],
    *,
    body: bytes,
    content_type: str | None,
    query: Mapping[str, str],
    now: datetime | None = None,
) -> ApiResponse:
    """`POST /api/purge`: dry run unless asked otherwise, answered within the front-end limit."""
    try:
        request = parse_purge_request(body, content_type=content_type, query=query)
    except BadRequest as exc:
        return error_response(400, exc.error, exc.details)
    try:
        config = load_settings(environ)
    except ConfigError as exc:
        log.error("purge_http: invalid configuration, nothing deleted: %s", "; ".join(exc.errors))
        return error_response(500, "invalid configuration; nothing was deleted", exc.errors)
    from purge.service import UnknownRule, run_purge, select_rules

    try:
        select_rules(config, request.rules)
    except UnknownRule as exc:
        return error_response(400, "unknown rule name", [str(exc)])
    try:
        report = await run_purge(
            config,
            rule_names=request.rules,
            dry_run=request.dry_run,
            budget_seconds=http_budget(config.time_budget),
            now=now,
        )
    except RegistryError as exc:
        log.error("purge_http: the registry refused or failed: %s", exc)
        return error_response(502, "the registry refused or failed the request", [str(exc)])
    except Exception as exc:
        log.exception("purge_http: the purge failed")
        return error_response(500, "the purge failed", [f"{type(exc).__name__}: {exc}"])
    log_report(report, "purge_http")
    return ApiResponse(200, report.to_dict())


# --- status -------------------------------------------------------------------------------


def status_document(
    environ: Mapping[str, str],
    *,
    function_timeout: float | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`GET /api/purge/status`: configuration without secrets, errors, next fire times."""
    moment = now or datetime.now(timezone.utc)
    config: Config | None = None
    errors: list[str] = []
    try:
        config = load_settings(environ)
    except ConfigError as exc:
        errors = list(exc.errors)
    schedule = config.schedule if config is not None else environ.get("PURGE_SCHEDULE")
    document: dict[str, Any] = {
        "version": __version__,
        "now": moment.isoformat(),
        "valid": config is not None,
        "errors": errors,
        "configuration": None,
        "schedule": _fire_times(schedule, moment),
        "rules": [],
        "timeBudgetSeconds": None,
    }
    if config is not None:
        from purge.config.settings import describe_config

        document["configuration"] = describe_config(config)
        document["rules"] = [
            {"name": rule.name, **_fire_times(rule.schedule, moment, every_tick=True)}
            for rule in config.rules
        ]
        document["timeBudgetSeconds"] = {
            "timer": timer_budget(config.time_budget, function_timeout),
            "http": http_budget(config.time_budget),
        }
    return document


def _fire_times(
    expression: str | None, start: datetime, *, every_tick: bool = False
) -> dict[str, Any]:
    if not expression:
        if every_tick:
            return {"schedule": None, "runsOnEveryTick": True, "nextFireTimes": []}
        return {"expression": None, "nextFireTimes": [], "error": "PURGE_SCHEDULE is not set"}
    from purge.config.schedule import next_fire_times

    key = "schedule" if every_tick else "expression"
    try:
        times: Sequence[datetime] = next_fire_times(expression, start, n=5)
    except ValueError as exc:
        return {key: expression, "nextFireTimes": [], "error": str(exc)}
    return {key: expression, "nextFireTimes": [t.isoformat() for t in times]}
