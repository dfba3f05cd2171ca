"""The timer trigger: which rules a tick runs, its budget, and what it deletes.

The first part tests the tick arithmetic (pure). The second calls the registered `purge_timer`
with real azure.functions TimerRequest objects against the emulator over HTTPS.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta, timezone

import pytest
from azure.functions.timer import TimerRequest

import function_app
from acr_emulator.testing import EmulatorServer
from purge.functions import common
from purge.functions import timer as timer_module
from purge.isotime import parse_utc
from tests.fixtures.identity_endpoint import ManagedIdentityEndpoint
from tests.function.support import set_app_settings

UTC = timezone.utc
DAILY_3AM = "0 0 3 * * *"


def at(text: str) -> datetime:
    """A UTC time from ISO text (any number of fraction digits, also on Python 3.10)."""
    parsed = parse_utc(text)
    assert parsed is not None, text
    return parsed


# --- schedule status and the tick window ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01T03:00:00+00:00", at("2024-05-01T03:00:00")),
        ("2024-05-01T03:00:00Z", at("2024-05-01T03:00:00")),
        ("2024-05-01T03:00:00.0012345Z", at("2024-05-01T03:00:00.001234")),
        ("2024-05-01T03:00:00", at("2024-05-01T03:00:00")),  # no offset: UTC
        ("2024-05-01T05:00:00+02:00", at("2024-05-01T03:00:00")),
        ("0001-01-01T00:00:00", None),  # the host's "never ran"
        ("yesterday", None),
        ("", None),
        (None, None),
        (1714532400, None),
    ],
)
def test_status_times_are_read_as_utc(raw: object, expected: datetime | None) -> None:
    assert timer_module.parse_status_time(raw) == expected


def test_previous_tick_is_the_last_run_the_host_recorded() -> None:
    tick = at("2024-05-02T03:00:00.05")
    status = {"Last": "2024-05-01T03:00:00+00:00", "Next": "2024-05-02T03:00:00+00:00"}
    assert timer_module.previous_tick(DAILY_3AM, status, tick) == at("2024-05-01T03:00:00")


def test_a_long_outage_widens_the_window_to_the_last_real_run() -> None:
    tick = at("2024-05-10T03:00:01")
    status = {"last": "2024-05-01T03:00:00Z"}
    assert timer_module.previous_tick(DAILY_3AM, status, tick) == at("2024-05-01T03:00:00")


@pytest.mark.parametrize(
    "status",
    [None, {}, {"Last": "0001-01-01T00:00:00"}, {"Last": "2024-05-03T03:00:00Z"}, {"Last": "x"}],
)
def test_without_a_usable_status_the_timer_is_assumed_to_have_run_on_schedule(
    status: dict[str, str] | None,
) -> None:
    """First run, lost status, or a status in the future (clock skew): one period back."""
    tick = at("2024-05-02T03:00:00.2")
    assert timer_module.previous_tick(DAILY_3AM, status, tick) == at("2024-05-01T03:00:00")
    hourly = "0 0 * * * *"
    assert timer_module.previous_tick(hourly, status, at("2024-05-02T14:00:00")) == at(
        "2024-05-02T13:00:00"
    )


def test_fallback_reads_ncrontab_day_and_weekday_together() -> None:
    """`0 0 3 1 * MON` fires on the 1st only when it is a Monday (NCRONTAB), not 1st OR Monday."""
    tick = at("2024-07-01T03:00:00")  # a Monday, the 1st
    assert timer_module.previous_tick("0 0 3 1 * MON", None, tick) == at("2024-04-01T03:00:00")


# --- budgets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:10:00", 600.0), ("00:05:30", 330.0), ("1.02:00:00", 93600.0), ("-1", None), (None, None)],
)
def test_function_timeout_parsing(text: str | None, seconds: float | None) -> None:
    assert common.parse_function_timeout(text) == seconds


def test_a_malformed_function_timeout_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="functionTimeout '10 minutes'"):
        common.parse_function_timeout("10 minutes")


def test_timer_budget_defaults_below_the_function_timeout_and_never_exceeds_it() -> None:
    assert common.timer_budget(None, 600.0) == 540.0
    assert common.timer_budget(120.0, 600.0) == 120.0
    assert common.timer_budget(3600.0, 600.0) == 540.0  # the host would kill the run
    assert common.timer_budget(None, 60.0) == 30.0  # tiny timeouts keep half
    assert common.timer_budget(None, None) == common.DEFAULT_TIMER_BUDGET_SECONDS
    assert common.timer_budget(5000.0, None) == 5000.0  # unbounded (Flex, Premium)


def test_http_budget_always_answers_before_the_front_end_limit() -> None:
    assert common.http_budget(None) == 200.0
    assert common.http_budget(30.0) == 30.0
    assert common.http_budget(900.0) == 200.0


def test_long_reports_are_logged_in_numbered_parts_that_join_back() -> None:
    text = "x" * 25 + "y" * 10
    parts = common.report_log_parts(text, limit=10)
    assert parts[0] == "[1/4] xxxxxxxxxx"
    assert len(parts) == 4
    assert "".join(p.split(" ", 1)[1] for p in parts) == text
    assert common.report_log_parts("{}", limit=10) == ["{}"]


# --- the registered timer against the emulator ----------------------------------------------

ALL_TAGS = {"app:old1", "app:old2", "app:new", "web:pr-1", "web:pr-2", "web:release"}


def rules(web_schedule: str) -> str:
    return json.dumps(
        [
            {"name": "app-old", "filter": ["app:.*"], "ago": "30d"},
            {"name": "web-pr", "filter": ["web:^pr-"], "ago": "1d", "schedule": web_schedule},
        ]
    )


@pytest.fixture
def settings(
    emu: EmulatorServer, identity_endpoint: ManagedIdentityEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """App settings as in Azure: the registry, and the managed identity (no password)."""
    set_app_settings(
        monkeypatch,
        emu,
        PURGE_SCHEDULE="0 0 * * * *",
        PURGE_DRY_RUN="false",
        # web-pr fires daily, twelve hours away from now: never inside these tests' windows.
        PURGE_RULES=rules(f"0 0 {(datetime.now(UTC).hour + 12) % 24} * * *"),
    )


def tags(emu: EmulatorServer) -> set[str]:
    return {
        f"{repo}:{tag}"
        for repo, content in emu.dump()["repositories"].items()
        for tag in content["tags"]
    }


def writes(emu: EmulatorServer) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in emu.request_log()
        if e["method"] in ("DELETE", "PATCH", "PUT") and "/oauth2/" not in e["path"]
    ]


def timer(last: datetime | None = None, *, past_due: bool = False) -> TimerRequest:
    status = {"Last": last.isoformat()} if last else {}
    return TimerRequest(past_due=past_due, schedule_status=status, schedule={})


@pytest.mark.usefixtures("settings")
async def test_the_timer_deletes_exactly_what_the_due_rules_say(
    emu: EmulatorServer,
    identity_endpoint: ManagedIdentityEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await function_app.purge_timer(timer(datetime.now(UTC) - timedelta(hours=1)))
    # authenticated as in Azure: the managed identity's token, exchanged at the registry
    assert identity_endpoint.issued
    assert set(emu.aad_tokens_seen()) <= set(identity_endpoint.issued)
    assert tags(emu) == ALL_TAGS - {"app:old1", "app:old2"}
    assert sorted(writes(emu)) == ["DELETE /acr/v1/app/_tags/old1", "DELETE /acr/v1/app/_tags/old2"]
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("purge sum")]
    assert len(summaries) == 1
    assert "deleted 2 tags" in summaries[0]
    reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith("purge report")]
    assert len(reports) == 1
    report = json.loads(reports[0].removeprefix("purge report "))
    assert report["dryRun"] is False
    assert {t["tag"] for t in report["deleted"]["tags"]} == {"old1", "old2"}


@pytest.mark.usefixtures("settings")
async def test_a_dry_run_setting_makes_the_timer_delete_nothing(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURGE_DRY_RUN", "true")
    await function_app.purge_timer(timer())
    assert tags(emu) == ALL_TAGS
    assert writes(emu) == []


@pytest.mark.usefixtures("settings")
async def test_past_due_ticks_are_logged_and_still_run(
    emu: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await function_app.purge_timer(timer(datetime.now(UTC) - timedelta(days=3), past_due=True))
    assert any("past due" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    # The window reaches back to the last real run, so web-pr's missed daily time counts too.
    assert tags(emu) == ALL_TAGS - {"app:old1", "app:old2", "web:pr-1"}


@pytest.mark.parametrize(
    ("minute", "expected"),
    [(31, ("app-old", "web-pr")), (29, ("app-old",))],
)
@pytest.mark.usefixtures("settings")
async def test_per_rule_schedules_pick_the_rules_whose_time_came(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, minute: int, expected: tuple[str, ...]
) -> None:
    """web-pr fires at :30 each hour; a tick at :31 since :00 runs it, a tick at :29 does not."""
    monkeypatch.setenv("PURGE_RULES", rules("0 30 * * * *"))
    monkeypatch.setenv("PURGE_DRY_RUN", "true")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    outcome = await timer_module.run_timer_tick(
        os.environ,
        past_due=False,
        schedule_status={"Last": hour.isoformat()},
        function_timeout=600.0,
        now=hour.replace(minute=minute),
    )
    assert outcome.status == "ran"
    assert outcome.rules == expected
    assert outcome.report is not None
    listed = {e["path"] for e in emu.request_log() if e["path"].endswith("/_tags")}
    assert ("/acr/v1/web/_tags" in listed) == ("web-pr" in expected)
    assert tags(emu) == ALL_TAGS


@pytest.mark.usefixtures("settings")
async def test_no_rule_due_means_no_registry_request(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_scheduled = json.dumps([{"name": "w", "filter": ["web:.*"], "schedule": "0 30 * * * *"}])
    monkeypatch.setenv("PURGE_RULES", only_scheduled)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    outcome = await timer_module.run_timer_tick(
        os.environ,
        past_due=False,
        schedule_status={"Last": hour.isoformat()},
        function_timeout=600.0,
        now=hour.replace(minute=10),
    )
    assert outcome.status == "nothing-due"
    assert emu.request_log() == []


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("PURGE_RULES", '[{"name": "x", "filter": ["app:.*"], "ago": "30 days"}]'),
        ("PURGE_SCHEDULE", "0 3 * * *"),
        ("PURGE_REGISTRY", "evil.example.com"),
        ("PURGE_DRYRUN", "true"),
    ],
)
@pytest.mark.usefixtures("settings")
async def test_an_invalid_configuration_logs_one_error_naming_it_and_touches_nothing(
    emu: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    setting: str,
    value: str,
) -> None:
    monkeypatch.setenv(setting, value)
    before = emu.dump()
    await function_app.purge_timer(timer())  # no exception: one clear line instead
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "invalid configuration, nothing deleted" in errors[0].getMessage()
    assert setting in errors[0].getMessage()
    assert emu.request_log() == []
    assert emu.dump() == before
