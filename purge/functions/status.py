"""`GET /api/purge/status`: the configuration without secrets, its errors, the fire times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from purge import __version__
from purge.config.settings import ConfigError, load_settings

if TYPE_CHECKING:
    from purge.config.settings import Config

from purge.functions.common import http_budget, timer_budget


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
        "lastRun": None,
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
        document["lastRun"] = _last_run(config)
    return document


def _last_run(config: Config) -> dict[str, Any] | None:
    """The newest recorded run's overview (its summary line); None when history is off.

    The status handler is synchronous (the host runs it on a worker thread, with no event
    loop), so the one storage read runs in its own loop; it is skipped when history is off."""
    if config.history is None:
        return None
    import asyncio

    from purge.functions.history import last_run

    return asyncio.run(last_run(config.history))


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
