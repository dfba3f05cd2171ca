"""Run history through the function app: the registered handlers, called with real
azure.functions objects, recording to Azurite and purging and restoring the emulator over HTTPS.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

import function_app
from acr_emulator.testing import EmulatorServer
from purge.history.azurite import Azurite, azurite, connection_string
from tests.fixtures.identity_endpoint import ManagedIdentityEndpoint
from tests.function.support import set_app_settings

RULES = [{"name": "app-old", "filter": ["app:.*"], "ago": "30d"}]


@pytest.fixture
def own_storage() -> Iterator[Azurite]:
    """An Azurite of this test's own: the app writes to the fixed container `purge-runs`."""
    with azurite() as server:
        yield server


@pytest.fixture
def settings(
    emu: EmulatorServer,
    identity_endpoint: ManagedIdentityEndpoint,
    own_storage: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_app_settings(
        monkeypatch,
        emu,
        PURGE_RULES=json.dumps(RULES),
        AzureWebJobsStorage=own_storage.connection_string,
    )


def request(method: str, route: str, body: Any = None, **params: str) -> func.HttpRequest:
    return func.HttpRequest(
        method=method,
        url=f"https://app.azurewebsites.net/api/{route}",
        headers={"Content-Type": "application/json"},
        params={"code": "function-key", **params},
        route_params={"id": route.rsplit("/", 1)[-1]} if route.startswith("purge/runs/") else {},
        body=b"" if body is None else json.dumps(body).encode(),
    )


def answer(response: func.HttpResponse) -> tuple[int, Any]:
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


def app_tags(emu: EmulatorServer) -> dict[str, str]:
    return {n: t["digest"] for n, t in emu.dump()["repositories"]["app"]["tags"].items()}


@pytest.mark.usefixtures("settings")
async def test_a_real_run_is_recorded_listed_and_undone(emu: EmulatorServer) -> None:
    before = app_tags(emu)
    status, dry = answer(await function_app.purge_http(request("POST", "purge")))
    assert status == 200 and dry["dryRun"] is True and dry.get("run") is None  # not recorded
    status, report = answer(
        await function_app.purge_http(request("POST", "purge", {"dryRun": False}))
    )
    assert status == 200 and report["totals"]["tagsDeleted"] == 2
    run_id = report["run"]
    assert set(app_tags(emu)) == {"new"}

    status, runs = answer(await function_app.purge_runs(request("GET", "purge/runs")))
    assert status == 200 and [r["id"] for r in runs["runs"]] == [run_id]
    assert runs["runs"][0]["state"] == "finished" and "deleted 2 tags" in runs["runs"][0]["summary"]
    status, record = answer(await function_app.purge_run(request("GET", f"purge/runs/{run_id}")))
    assert status == 200 and record["schema"] == 1
    assert {p["tag"] for p in record["planned"] if p["kind"] == "tag"} == {"old1", "old2"}
    assert record["report"]["totals"] == report["totals"]

    # the status handler is synchronous (the host runs it in a worker thread)
    status_request = request("GET", "purge/status")
    status, document = answer(await asyncio.to_thread(function_app.purge_status, status_request))
    assert (
        document["lastRun"]["id"] == run_id and "deleted 2 tags" in document["lastRun"]["summary"]
    )

    status, plan = answer(
        await function_app.purge_restore(request("POST", "purge/restore", {"run": run_id}))
    )
    assert status == 200 and plan["dryRun"] is True and plan["totals"]["restored"] == 2
    assert set(app_tags(emu)) == {"new"}  # dry run by default
    body = {"run": run_id, "dryRun": False}
    status, done = answer(await function_app.purge_restore(request("POST", "purge/restore", body)))
    assert status == 200 and done["totals"]["restored"] == 2
    assert app_tags(emu) == before  # the same digests as before the purge


async def test_unwritable_history_deletes_nothing(
    emu: EmulatorServer,
    identity_endpoint: ManagedIdentityEndpoint,
    own_storage: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong_key = connection_string(own_storage.port, "d3Jvbmcta2V5" * 8)
    set_app_settings(monkeypatch, emu, PURGE_RULES=json.dumps(RULES), AzureWebJobsStorage=wrong_key)
    before = emu.dump()["repositories"]
    status, report = answer(
        await function_app.purge_http(request("POST", "purge", {"dryRun": False}))
    )
    assert status == 200 and report["totals"]["tagsDeleted"] == 0 and report["complete"] is False
    assert "permission denied (HTTP 403" in report["errors"][0]["error"]
    assert emu.dump()["repositories"] == before


async def test_runs_answer_clear_errors(
    emu: EmulatorServer, identity_endpoint: ManagedIdentityEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_app_settings(monkeypatch, emu, PURGE_RULES=json.dumps(RULES))  # no storage: history off
    status, body = answer(await function_app.purge_runs(request("GET", "purge/runs")))
    assert status == 404 and body["error"] == "run history is off"
    status, body = answer(await function_app.purge_run(request("GET", "purge/runs/..%2Fx")))
    assert status == 400 and "malformed" in body["details"][0]
    status, body = answer(
        await function_app.purge_restore(request("POST", "purge/restore", {"run": 1}))
    )
    assert status == 400 and '"run" must be a run id' in body["details"][0]
    status, body = answer(
        await function_app.purge_restore(
            request("POST", "purge/restore", {"run": "20261202T030000Z-abcdef", "dryrun": False})
        )
    )
    assert status == 400 and "unknown key 'dryrun'" in body["details"][0]


async def test_the_timer_records_its_run_and_removes_records_past_the_retention(
    emu: EmulatorServer,
    identity_endpoint: ManagedIdentityEndpoint,
    own_storage: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import datetime, timedelta, timezone

    from azure.functions.timer import TimerRequest

    from purge.history.record import encode, new_run_id
    from purge.history.store import blob_store_from_connection_string

    set_app_settings(
        monkeypatch, emu, PURGE_RULES=json.dumps(RULES), PURGE_SCHEDULE="0 0 * * * *",
        AzureWebJobsStorage=own_storage.connection_string, PURGE_HISTORY_DAYS="30",
    )  # fmt: skip
    store = blob_store_from_connection_string(own_storage.connection_string)
    old_start = datetime.now(timezone.utc) - timedelta(days=31)
    old = new_run_id(old_start)
    try:
        await store.write(old, encode(
            run_id=old, registry=emu.login_server, source="timer", started=old_start,
            state="finished", planned=[], report=None, summary="an old run",
        ))  # fmt: skip
        last = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat()
        await function_app.purge_timer(
            TimerRequest(past_due=False, schedule_status={"Last": last}, schedule={})
        )
        status, runs = answer(await function_app.purge_runs(request("GET", "purge/runs")))
        assert status == 200
        assert [(r["source"], r["state"]) for r in runs["runs"]] == [("timer", "finished")]
        assert set(app_tags(emu)) == {"new"}
    finally:
        await store.close()


@pytest.mark.usefixtures("settings")
async def test_a_restore_past_its_budget_answers_incomplete_and_the_next_call_finishes(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restore endpoint has the purge endpoint's budget (PURGE_TIME_BUDGET, at most 200 s):
    what it did not start is listed, and calling again continues."""
    import time

    before = app_tags(emu)
    status, report = answer(
        await function_app.purge_http(request("POST", "purge", {"dryRun": False}))
    )
    assert status == 200 and report["totals"]["tagsDeleted"] == 2
    monkeypatch.setenv("PURGE_TIME_BUDGET", "1")
    monkeypatch.setenv("PURGE_CONCURRENCY", "1")  # one tag at a time
    # The first PUT takes 2 s: the 1 s budget is spent while it runs, whatever the load.
    emu.inject_fault("PUT", r"/v2/app/manifests/.*", status=None, delay=2.0)
    body = {"run": report["run"], "dryRun": False}

    started = time.monotonic()
    status, first = answer(await function_app.purge_restore(request("POST", "purge/restore", body)))
    elapsed = time.monotonic() - started
    print(f"POST /api/purge/restore with PURGE_TIME_BUDGET=1 answered in {elapsed:.2f} s")
    assert status == 200 and first["complete"] is False
    assert "time budget of 1s ran out" in first["incompleteReason"]
    assert first["totals"]["restored"] == 1 and first["totals"]["notStarted"] == 1
    [waiting] = first["notStarted"]
    assert {t["tag"]: t["status"] for t in first["tags"]}[waiting["tag"]] == "not_started"
    assert set(app_tags(emu)) == {"new"} | ({"old1", "old2"} - {waiting["tag"]})

    status, second = answer(
        await function_app.purge_restore(request("POST", "purge/restore", body))
    )
    assert status == 200 and second["complete"] is True and second["notStarted"] == []
    assert {t["tag"]: t["status"] for t in second["tags"]} == {
        waiting["tag"]: "restored",
        ({"old1", "old2"} - {waiting["tag"]}).pop(): "present",
    }
    assert app_tags(emu) == before
