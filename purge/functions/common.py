"""What every trigger shares: time budgets from host.json and settings, and report logging."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from purge.report import Report

log = logging.getLogger("purge.functions")

#: HTTP answers must come before Azure's 230 s front-end timeout; leave room for the response.
HTTP_BUDGET_CAP_SECONDS = 200.0
#: Stop this long before host.json's functionTimeout so the report is still logged.
TIMEOUT_MARGIN_SECONDS = 60.0
#: Timer budget when neither PURGE_TIME_BUDGET nor a bounded functionTimeout says otherwise
#: (10 minutes, the Consumption plan's maximum, minus the margin).
DEFAULT_TIMER_BUDGET_SECONDS = 540.0
#: Application Insights cuts trace messages at 32 KiB: log long reports in parts below that.
LOG_PART_CHARS = 30_000


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
