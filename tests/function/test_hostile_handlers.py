"""The handlers answer within their budgets against a hostile registry, and never echo a secret.

`POST /api/purge` with `PURGE_TIME_BUDGET=10` once gave no answer in 60 s against empty pages
that keep a next link; an unknown `--pasword S3cret` in PURGE_COMMAND was echoed by the status
endpoint, the timer log and check-config. Real azure.functions objects, a hostile HTTPS server.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

import function_app
from purge.cli import main as cli
from tests.fixtures.hostile_registry import HostileRegistry

BUDGET = 3.0
#: Scheduling slack on a loaded machine; the budget itself is what the handlers promise.
SLACK = 2.0
SECRET = "S3cret-from-a-typo"


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Callable[[str], HostileRegistry]]:
    started: list[HostileRegistry] = []

    def make(mode: str) -> HostileRegistry:
        server = HostileRegistry(mode, str(tmp_path)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def point_at(server: HostileRegistry, monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    for key, value in {
        "PURGE_REGISTRY": server.login_server,
        "PURGE_ALLOWED_HOSTS": server.login_server,
        "PURGE_CA_FILE": server.ca_file,
        "PURGE_USERNAME": "user",
        "PURGE_PASSWORD": "pass",
        "PURGE_SCHEDULE": "0 0 3 * * *",
        "PURGE_TIME_BUDGET": str(BUDGET),
        "PURGE_RULES": json.dumps([{"name": "r", "filter": ["app:.*"], "ago": "1d"}]),
        **settings,
    }.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("mode", ["empty-pages", "endless-catalog", "drip"])
async def test_the_http_handler_answers_within_its_budget(
    hostile: Callable[[str], HostileRegistry], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    server = hostile(mode)
    point_at(server, monkeypatch)
    request = func.HttpRequest(
        method="POST", url="https://app.azurewebsites.net/api/purge",
        headers={"Content-Type": "application/json"}, body=b'{"dryRun": false}',
    )  # fmt: skip
    started = time.monotonic()
    response = await function_app.purge_http(request)
    elapsed = time.monotonic() - started
    print(f"POST /api/purge against {mode}: answered in {elapsed:.2f}s (budget {BUDGET:g}s)")
    assert elapsed < BUDGET + SLACK, elapsed
    assert response.status_code == 200
    report: dict[str, Any] = json.loads(response.get_body())
    assert report["complete"] is False
    assert report["totals"]["tagsDeleted"] == 0
    assert server.writes() == []


@pytest.mark.parametrize("mode", ["empty-pages", "drip"])
async def test_the_timer_handler_ends_within_its_budget(
    hostile: Callable[[str], HostileRegistry],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    server = hostile(mode)
    point_at(server, monkeypatch, PURGE_SCHEDULE="* * * * * *")  # every second: always due
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    await function_app.purge_timer(TimerRequest(past_due=False, schedule_status={}, schedule={}))
    elapsed = time.monotonic() - started
    print(f"timer tick against {mode}: ended in {elapsed:.2f}s (budget {BUDGET:g}s)")
    assert elapsed < BUDGET + SLACK, elapsed
    assert "INCOMPLETE" in caplog.text
    assert server.writes() == []


COMMAND = f"acr purge --filter app:.* --ago 1d --pasword {SECRET}"
#: Mistyped flags in PURGE_COMMAND, and what the messages show in place of the secret.
MISTYPED = [
    pytest.param(COMMAND, "--pasword (value hidden)", id="secret-looking"),
    pytest.param(COMMAND.replace(SECRET, f"-{SECRET}"), "--pasword (value hidden)", id="dash"),
    pytest.param(
        f"acr purge --filter app:.* --client-sec {SECRET}", "--client-sec (value hidden)", id="name"
    ),
    pytest.param(f"acr purge --filter app:.* -P {SECRET}", "-P (value hidden)", id="short"),
]


@pytest.mark.parametrize(("command", "shown"), MISTYPED)
def test_the_status_endpoint_never_echoes_a_mistyped_secret_flag(
    monkeypatch: pytest.MonkeyPatch, command: str, shown: str
) -> None:
    monkeypatch.setenv("PURGE_REGISTRY", "contoso.azurecr.io")
    monkeypatch.setenv("PURGE_COMMAND", command)
    request = func.HttpRequest(
        method="GET", url="https://app.azurewebsites.net/api/purge/status", body=b""
    )
    text = function_app.purge_status(request).get_body().decode()
    document = json.loads(text)
    assert document["valid"] is False
    assert any(shown in e for e in document["errors"]), document["errors"]
    assert SECRET not in text and SECRET[1:] not in text


@pytest.mark.parametrize(("command", "shown"), MISTYPED)
async def test_the_timer_log_never_echoes_a_mistyped_secret_flag(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, command: str, shown: str
) -> None:
    monkeypatch.setenv("PURGE_REGISTRY", "contoso.azurecr.io")
    monkeypatch.setenv("PURGE_SCHEDULE", "0 0 3 * * *")
    monkeypatch.setenv("PURGE_COMMAND", command)
    caplog.set_level(logging.INFO)
    await function_app.purge_timer(TimerRequest(past_due=False, schedule_status={}, schedule={}))
    assert "invalid configuration" in caplog.text
    assert shown in caplog.text
    assert SECRET not in caplog.text and SECRET[1:] not in caplog.text


@pytest.mark.parametrize(("command", "shown"), MISTYPED)
def test_check_config_never_echoes_a_secret(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: str,
    shown: str,
) -> None:
    monkeypatch.delenv("PURGE_COMMAND", raising=False)
    path = tmp_path / "local.settings.json"
    values = {
        "PURGE_REGISTRY": "contoso.azurecr.io",
        "PURGE_SCHEDULE": "0 0 3 * * *",
        "PURGE_COMMAND": command,
        "PURGE_USERNAME": "u",
        "PURGE_PASSWORD": 81726354,
    }
    path.write_text(json.dumps({"Values": values}), encoding="utf-8")
    assert cli.main(["check-config", "--settings", str(path)]) == 2
    out = capsys.readouterr()
    assert "PURGE_PASSWORD: must be a string" in out.err
    assert "81726354" not in out.out + out.err
    assert SECRET[1:] not in out.out + out.err
    monkeypatch.setenv("PURGE_REGISTRY", "contoso.azurecr.io")
    monkeypatch.setenv("PURGE_SCHEDULE", "0 0 3 * * *")
    monkeypatch.setenv("PURGE_COMMAND", command)
    assert cli.main(["check-config"]) == 2
    out = capsys.readouterr()
    assert shown in out.err
    assert SECRET not in out.out + out.err and SECRET[1:] not in out.out + out.err
