"""POST /api/purge end to end: the registered handler, called with real azure.functions
HttpRequest objects, purging the emulator over HTTPS with the real azure-containerregistry SDK.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest

import function_app
from acr_emulator.testing import EmulatorServer
from tests.fixtures.identity_endpoint import ManagedIdentityEndpoint
from tests.function.support import SCENARIO, set_app_settings

RULES = [
    {"name": "app-old", "filter": ["app:.*"], "ago": "30d"},
    {"name": "web-pr", "filter": ["web:^pr-"], "ago": "1d"},
]


@pytest.fixture
def settings(
    emu: EmulatorServer, identity_endpoint: ManagedIdentityEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """App settings as in Azure: the registry, and the managed identity (no password)."""
    set_app_settings(monkeypatch, emu, PURGE_RULES=json.dumps(RULES), PURGE_SCHEDULE="0 0 3 * * *")


async def post(body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    request = func.HttpRequest(
        method="POST",
        url="https://app.azurewebsites.net/api/purge",
        headers={"Content-Type": "application/json"},
        params={"code": "function-key"},
        body=b"" if body is None else json.dumps(body).encode(),
    )
    response = await function_app.purge_http(request)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


def tags(dump: dict[str, Any]) -> set[str]:
    return {
        f"{repo}:{tag}" for repo, content in dump["repositories"].items() for tag in content["tags"]
    }


def writes(emu: EmulatorServer) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in emu.request_log()
        if e["method"] in ("DELETE", "PATCH", "PUT", "POST") and "/oauth2/" not in e["path"]
    ]


def deleted_tags(report: dict[str, Any]) -> set[str]:
    return {f"{t['repository']}:{t['tag']}" for t in report["deleted"]["tags"]}


@pytest.mark.usefixtures("settings")
async def test_without_a_body_it_is_a_dry_run_that_changes_nothing(emu: EmulatorServer) -> None:
    before = emu.dump()
    status, report = await post()
    assert status == 200
    assert report["dryRun"] is True
    assert report["complete"] is True
    assert deleted_tags(report) == {"app:old1", "app:old2", "web:pr-1"}
    assert report["totals"]["tagsDeleted"] == 3
    assert emu.dump() == before
    assert writes(emu) == []


@pytest.mark.usefixtures("settings")
async def test_explicit_dry_run_true_with_a_rule_subset(emu: EmulatorServer) -> None:
    before = emu.dump()
    status, report = await post({"dryRun": True, "rules": ["web-pr"]})
    assert status == 200
    assert deleted_tags(report) == {"web:pr-1"}
    assert emu.dump() == before


@pytest.mark.usefixtures("settings")
async def test_dry_run_false_deletes_exactly_what_the_dry_run_planned(emu: EmulatorServer) -> None:
    before = tags(emu.dump())
    _, plan = await post({"rules": ["app-old"]})
    status, report = await post({"dryRun": False, "rules": ["app-old"]})
    assert status == 200
    assert report["dryRun"] is False
    assert report["complete"] is True
    assert deleted_tags(report) == deleted_tags(plan) == {"app:old1", "app:old2"}
    assert tags(emu.dump()) == before - {"app:old1", "app:old2"}
    assert sorted(writes(emu)) == ["DELETE /acr/v1/app/_tags/old1", "DELETE /acr/v1/app/_tags/old2"]


@pytest.mark.usefixtures("settings")
async def test_a_run_out_of_budget_answers_complete_false_and_deletes_nothing_more(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURGE_TIME_BUDGET", "0.001")
    before = emu.dump()
    status, report = await post({"dryRun": False})
    assert status == 200
    assert report["complete"] is False
    assert report["totals"]["tagsDeleted"] == 0
    assert emu.dump() == before
    assert writes(emu) == []


@pytest.mark.usefixtures("settings")
async def test_an_invalid_configuration_is_a_500_and_touches_no_registry(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURGE_RULES", json.dumps([{**RULES[0], "keep": -1}]))
    before = emu.dump()
    status, answer = await post({"dryRun": False})
    assert status == 500
    assert answer["error"] == "invalid configuration; nothing was deleted"
    assert any("PURGE_RULES" in d for d in answer["details"])
    assert emu.request_log() == []
    assert emu.dump() == before


@pytest.mark.usefixtures("settings")
async def test_bad_requests_never_reach_the_registry(emu: EmulatorServer) -> None:
    for body in ({"dryRun": "false"}, {"dryrun": False}, {"rules": ["nope"]}):
        status, answer = await post(body)
        assert status == 400, answer
    assert emu.request_log() == []


async def test_an_identity_without_rights_gets_a_permission_error_and_nothing_is_deleted(
    emulator_factory: Callable[..., EmulatorServer],
    identity_endpoint: ManagedIdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = emulator_factory(scenario=SCENARIO, aad_allow_list={"another-identity"})
    for key, value in {
        "PURGE_REGISTRY": emu.login_server,
        "PURGE_ALLOWED_HOSTS": emu.login_server,
        "PURGE_CA_FILE": emu.ca_file,
        "PURGE_RULES": json.dumps(RULES),
    }.items():
        monkeypatch.setenv(key, value)
    before = emu.dump()
    status, report = await post({"dryRun": False})
    assert status == 200  # the run itself happened; its report says what failed
    assert report["totals"] == {
        "tagsDeleted": 0,
        "manifestsDeleted": 0,
        "bytesFreed": 0,
        "errors": len(report["errors"]),
    }
    assert report["errors"]
    assert "permission denied" in report["errors"][0]["error"]
    assert "AcrPull" in report["errors"][0]["error"]
    assert emu.dump() == before
    assert writes(emu) == []
