"""Run history end to end: real SDK over HTTPS to the emulator, records in Azurite or a folder.

Write-ahead is checked at the moment of truth: when a repository's deletions are about to start,
the stored record already lists them and the registry still has them. A store that cannot be
written stops the run before any delete. Restore puts tags back on their digests, never moves a
tag that was pushed again, and says which tags cannot come back.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from acr_emulator.testing import EmulatorServer
from purge.config.settings import load_settings
from purge.history.azurite import connection_string, free_port
from purge.history.journal import run_recorded
from purge.history.record import PlannedTag
from purge.history.restore import restore_run
from purge.history.settings import HistorySettings
from purge.history.store import list_records, read_record
from purge.registry.acr import AcrRegistry
from purge.registry.acr import open_registry as open_acr
from purge.registry.policies import WRITE_GRACE
from purge.service import run_purge
from tests.fixtures.anonymous import AnonymousTokenSource
from tests.fixtures.storage import StorageAccount

SCENARIO: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": "a", "kind": "image", "updated": "-40d", "tags": ["v1"]},
                {"id": "b", "kind": "image", "updated": "-40d", "tags": ["v2"]},
                {"id": "c", "kind": "image", "updated": "-1d", "tags": ["latest"]},
            ]
        },
        "old": {"manifests": [{"id": "o", "kind": "image", "updated": "-40d", "tags": ["x"]}]},
    }
}
RULES = [
    {"name": "tags", "filter": ["app:^v"], "ago": "30d"},
    {"name": "images", "filter": ["old:.*"], "ago": "30d", "untagged": True},
]


def settings(emu: EmulatorServer, **extra: str) -> dict[str, str]:
    return {
        "PURGE_REGISTRY": emu.login_server, "PURGE_ALLOWED_HOSTS": "127.0.0.1",
        "PURGE_CA_FILE": emu.ca_file, "PURGE_RULES": json.dumps(RULES),
        "PURGE_USERNAME": emu.username or "", "PURGE_PASSWORD": emu.password or "", **extra,
    }  # fmt: skip


def tags(emu: EmulatorServer, repo: str) -> dict[str, str]:
    found = emu.dump()["repositories"].get(repo, {"tags": {}})["tags"]
    return {name: tag["digest"] for name, tag in found.items()}


async def purge_recorded(emu: EmulatorServer, history: HistorySettings, run: Any = None) -> Any:
    config = load_settings(settings(emu))
    return await run_recorded(
        history,
        registry=emu.login_server,
        source="test",
        dry_run=False,
        run=run or functools.partial(run_purge, config, dry_run=False),
    )


def open_registry(emu: EmulatorServer, **connection: Any) -> Any:
    config = load_settings(settings(emu))
    if connection:
        from dataclasses import replace

        return open_acr(replace(config.connection, **connection))
    return open_acr(config.connection)


async def test_the_record_lists_each_deletion_before_it_happens(
    emulator_factory: Any, storage: StorageAccount
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    history = HistorySettings(
        connection_string=storage.connection_string, container=storage.container
    )
    reader = history.open()
    checks: list[tuple[str, set[str], set[str], set[str]]] = []

    async def run(hooks: Any) -> Any:
        class Checked:
            untagged_at = hooks.untagged_at

            async def before_delete(self, plan: Any) -> None:
                await hooks.before_delete(plan)
                listed, _ = await list_records(reader, 1)
                record = await read_record(reader, listed[0]["id"])
                stored = {p.tag for p in record.planned if isinstance(p, PlannedTag)}
                planned = {t.tag for t in plan.tag_deletions}
                checks.append((plan.repository, planned, stored, set(tags(emu, plan.repository))))

        config = load_settings(settings(emu))
        return await run_purge(config, dry_run=False, hooks=Checked())

    try:
        report = await purge_recorded(emu, history, run)
        assert not report.errors
        assert {c[0] for c in checks} == {"app", "old"}
        for _repository, planned, stored, still_there in checks:
            assert planned <= stored  # recorded ...
            assert planned <= still_there  # ... before anything was deleted
        assert tags(emu, "app") == {"latest": tags(emu, "app")["latest"]}
        listed, _ = await list_records(reader, 5)
        assert [r["state"] for r in listed] == ["finished"]
        assert listed[0]["id"] == report.to_dict()["run"]
        record = await read_record(reader, listed[0]["id"])
        manifests = [p for p in record.planned if not isinstance(p, PlannedTag)]
        assert [m.media_type for m in manifests] == ["application/vnd.oci.image.manifest.v1+json"]
        assert record.document["report"]["totals"]["tagsDeleted"] == 3
    finally:
        await reader.close()


async def test_unwritable_history_deletes_nothing_and_says_why(emulator_factory: Any) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    before = emu.dump()["repositories"]
    history = HistorySettings(connection_string=connection_string(free_port()))
    report = await purge_recorded(emu, history)
    assert emu.dump()["repositories"] == before
    assert report.tags_deleted == 0 and not report.complete
    assert "could not be written" in report.errors[0]["error"]
    assert "unreachable" in report.errors[0]["error"]


async def test_a_record_that_fails_mid_run_stops_every_delete(
    emulator_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    before = emu.dump()["repositories"]
    folder = tmp_path / "runs"

    async def run(hooks: Any) -> Any:
        # The first record is written; now the folder turns into a file: every later write fails.
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()
        folder.write_text("not a folder")
        return await run_purge(load_settings(settings(emu)), dry_run=False, hooks=hooks)

    report = await purge_recorded(emu, HistorySettings(folder=folder), run)
    assert emu.dump()["repositories"] == before
    assert report.tags_deleted == 0
    refused = {e["repository"]: e["error"] for e in report.errors if e["ref"] == "history"}
    assert set(refused) == {"app", "old", "*"}
    assert "nothing deleted in this repository" in refused["app"]
    assert "nothing deleted in this repository" in refused["old"]
    assert "the run's outcome could not be recorded" in refused["*"]


async def test_restore_puts_tags_back_and_never_moves_a_tag(
    emulator_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    original = tags(emu, "app")
    history = HistorySettings(folder=tmp_path / "runs")
    report = await purge_recorded(emu, history)
    assert set(tags(emu, "app")) == {"latest"} and tags(emu, "old") == {}
    run_id = report.to_dict()["run"]
    registry = open_registry(emu)
    store = history.open()
    try:
        # v2 is pushed again, onto another image, before the restore
        body, media_type = await registry.read_manifest("app", original["latest"])
        emu.push_manifest("app", body, media_type, tag="v2")
        record = await read_record(store, run_id)

        dry = await restore_run(record, registry, dry_run=True)
        assert {(i.tag, i.status) for i in dry.items} == {
            ("v1", "would_restore"),
            ("v2", "conflict"),
            ("x", "manifest_deleted"),
        }
        assert set(tags(emu, "app")) == {"latest", "v2"}  # the dry run changed nothing

        real = await restore_run(record, registry, dry_run=False)
        outcome = {i.tag: (i.status, i.detail) for i in real.items}
        assert outcome["v1"][0] == "restored"
        assert outcome["v2"][0] == "conflict" and original["latest"] in outcome["v2"][1]
        assert outcome["x"] == (
            "manifest_deleted",
            "not restorable: manifest deleted (deleted by this run)",
        )
        now = tags(emu, "app")
        assert now["v1"] == original["v1"]  # the same digest: pulls by digest and tag agree
        assert now["v2"] == original["latest"]  # not moved back
        pulled = await registry.get_manifest("app", now["v1"])
        assert pulled.digest == original["v1"]
        again = await restore_run(record, registry, dry_run=False)
        assert {i.tag: i.status for i in again.items}["v1"] == "present"
    finally:
        await registry.close()
        await store.close()


async def test_restore_without_push_rights_fails_each_item_clearly(
    emulator_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory(scenario=SCENARIO, anonymous_pull=True)
    history = HistorySettings(folder=tmp_path / "runs")
    report = await purge_recorded(emu, history)
    store = history.open()
    config = load_settings(settings(emu))
    connection = replace(config.connection, username=None, password=None)
    registry = AcrRegistry(connection, source=AnonymousTokenSource())
    try:
        record = await read_record(store, report.to_dict()["run"])
        result = await restore_run(record, registry, dry_run=False)
        failed = {i.tag: i.detail for i in result.items if i.status == "failed"}
        assert set(failed) == {"v1", "v2"}
        assert all("permission denied (push)" in d and "AcrPush" in d for d in failed.values())
        assert set(tags(emu, "app")) == {"latest"}  # nothing half-done
        assert not result.ok
    finally:
        await registry.close()
        await store.close()


MANY: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                *({"id": f"i{n}", "kind": "image", "updated": "-40d", "tags": [f"t{n}"]}
                  for n in range(1, 7)),
                {"id": "new", "kind": "image", "updated": "-1d", "tags": ["latest"]},
            ]
        }
    }
}  # fmt: skip
#: The restore's budget, and the latency injected on the first PUT: far longer, so the budget
#: is spent while that tag is being put back whatever the machine's load.
RESTORE_BUDGET = 1.0
PUT_LATENCY = 2.0


async def test_a_restore_past_its_budget_lists_what_it_did_not_start_and_continues(
    emulator_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory(scenario=MANY)
    original = tags(emu, "app")
    history = HistorySettings(folder=tmp_path / "runs")
    config = load_settings(
        settings(emu, PURGE_RULES=json.dumps([{"name": "t", "filter": ["app:^t"], "ago": "30d"}]))
    )
    report = await purge_recorded(emu, history, functools.partial(run_purge, config, dry_run=False))
    assert set(tags(emu, "app")) == {"latest"}
    store = history.open()
    registry = open_acr(config.connection, max_concurrency=1)  # one tag at a time
    try:
        record = await read_record(store, report.to_dict()["run"])
        emu.reset_log()
        emu.inject_fault("PUT", r"/v2/app/manifests/.*", status=None, delay=PUT_LATENCY)
        started = time.monotonic()
        first = await restore_run(record, registry, dry_run=False, budget_seconds=RESTORE_BUDGET)
        elapsed = time.monotonic() - started
        print(f"restore with a {RESTORE_BUDGET:g} s budget answered in {elapsed:.2f} s")
        assert elapsed < RESTORE_BUDGET + WRITE_GRACE  # the PUT under way finished, no other
        data = first.to_dict()
        assert data["complete"] is False and not first.ok
        assert "time budget of 1s ran out" in data["incompleteReason"]
        [restored] = [i for i in first.items if i.status == "restored"]
        not_started = [i for i in first.items if i.status == "not_started"]
        assert len(not_started) == 5 and data["totals"]["notStarted"] == 5
        assert {i["tag"] for i in data["notStarted"]} == {i.tag for i in not_started}
        assert all(i.detail.startswith("not started: the time budget ran out") for i in not_started)
        assert tags(emu, "app") == {"latest": original["latest"], restored.tag: restored.digest}
        puts = [e for e in emu.request_log() if e["method"] == "PUT"]
        assert len(puts) == 1  # nothing of the others was sent
        assert "not started: the time budget of 1s ran out" in first.summary_line()

        again = await restore_run(record, registry, dry_run=False, budget_seconds=60)
        assert again.complete and again.ok and again.to_dict()["notStarted"] == []
        assert {i.tag: i.status for i in again.items} == {
            **{i.tag: "restored" for i in not_started},
            restored.tag: "present",
        }
        assert tags(emu, "app") == original  # every tag back on the digest it had
    finally:
        await registry.close()
        await store.close()
