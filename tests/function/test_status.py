"""GET /api/purge/status: configuration without secrets, errors, next fire times, version."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import azure.functions as func
import pytest

import function_app
import purge
from purge.functions import status

UTC = timezone.utc
SECRET = "s3cret-Pa55word-never-shown"
SETTINGS = {
    "PURGE_REGISTRY": "contoso.azurecr.io",
    "PURGE_SCHEDULE": "0 0 3 * * *",
    "PURGE_USERNAME": "purger",
    "PURGE_PASSWORD": SECRET,
    "PURGE_TIME_BUDGET": "900",
    "PURGE_RULES": json.dumps(
        [
            {"name": "nightly", "filter": ["app:.*"], "ago": "30d"},
            {"name": "sundays", "filter": ["web:.*"], "ago": "7d", "schedule": "0 0 4 * * 0"},
        ]
    ),
}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in SETTINGS.items():
        monkeypatch.setenv(key, value)
    return SETTINGS


def get_status() -> tuple[int, str]:
    request = func.HttpRequest(
        method="GET", url="https://app.azurewebsites.net/api/purge/status", body=b""
    )
    response = function_app.purge_status(request)
    assert response.mimetype == "application/json"
    return response.status_code, response.get_body().decode()


def test_status_shows_configuration_fire_times_and_version_but_no_secret(
    settings: dict[str, str],
) -> None:
    status, text = get_status()
    assert status == 200
    assert SECRET not in text
    document: dict[str, Any] = json.loads(text)
    assert document["version"] == purge.__version__
    assert document["valid"] is True
    assert document["errors"] == []
    assert document["configuration"]["registry"] == "contoso.azurecr.io"
    fires = [datetime.fromisoformat(t) for t in document["schedule"]["nextFireTimes"]]
    assert len(fires) == 5
    assert fires == sorted(fires)
    assert all((t.hour, t.minute, t.second) == (3, 0, 0) for t in fires)
    assert [r["name"] for r in document["rules"]] == ["nightly", "sundays"]
    assert document["rules"][0]["runsOnEveryTick"] is True
    sundays = [datetime.fromisoformat(t) for t in document["rules"][1]["nextFireTimes"]]
    assert len(sundays) == 5 and all(t.weekday() == 6 and t.hour == 4 for t in sundays)
    # PURGE_TIME_BUDGET=900 is capped by host.json's 10 minutes and by the HTTP front end.
    assert document["timeBudgetSeconds"] == {"timer": 540.0, "http": 200.0}


def test_status_document_fire_times_are_exact_for_a_given_moment(
    settings: dict[str, str],
) -> None:
    now = datetime(2024, 5, 1, 3, 0, 0, tzinfo=UTC)  # a Wednesday, exactly at a fire time
    document = status.status_document(SETTINGS, function_timeout=600.0, now=now)
    assert document["now"] == "2024-05-01T03:00:00+00:00"
    assert document["schedule"] == {
        "expression": "0 0 3 * * *",
        "nextFireTimes": [f"2024-05-0{d}T03:00:00+00:00" for d in range(2, 7)],
    }
    assert document["rules"][1] == {
        "name": "sundays",
        "schedule": "0 0 4 * * 0",
        "nextFireTimes": [
            "2024-05-05T04:00:00+00:00",
            "2024-05-12T04:00:00+00:00",
            "2024-05-19T04:00:00+00:00",
            "2024-05-26T04:00:00+00:00",
            "2024-06-02T04:00:00+00:00",
        ],
    }


def test_status_of_an_invalid_configuration_lists_every_error_by_setting(
    settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURGE_CONCURENCY", "8")
    monkeypatch.setenv("PURGE_RULES", '[{"name": "x", "filter": ["app:.*"], "keep": "ten"}]')
    status, text = get_status()
    assert status == 200
    assert SECRET not in text
    document = json.loads(text)
    assert document["valid"] is False
    assert document["configuration"] is None
    assert any(e.startswith("PURGE_CONCURENCY") for e in document["errors"])
    assert any("PURGE_RULES" in e for e in document["errors"])
    # the timer's schedule is still shown: it was valid on its own
    assert len(document["schedule"]["nextFireTimes"]) == 5


def test_status_explains_a_broken_schedule(
    settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURGE_SCHEDULE", "0 3 * * *")
    document = json.loads(get_status()[1])
    assert document["valid"] is False
    assert any(e.startswith("PURGE_SCHEDULE") for e in document["errors"])
    assert document["schedule"]["nextFireTimes"] == []
    assert "6 fields" in document["schedule"]["error"]
