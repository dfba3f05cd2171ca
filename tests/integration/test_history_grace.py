"""The grace period end to end: real SDK over HTTPS to the emulator, history in Azurite.

The first run deletes the tags and keeps their images (the grace starts); an undo within the
grace brings back tags on whole images; a later run deletes the images once the grace is over,
and not before. Later runs are given a later `now`, the planner's clock; the history is real.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from acr_emulator.testing import EmulatorServer
from purge.config.settings import load_settings
from purge.history.journal import run_recorded
from purge.history.restore import restore_run
from purge.history.settings import HistorySettings
from purge.history.store import read_record
from purge.registry.acr import open_registry
from purge.service import run_purge
from tests.fixtures.storage import StorageAccount

SCENARIO: dict[str, Any] = {
    "repositories": {
        "app": {
            "manifests": [
                {"id": "a", "kind": "image", "updated": "-40d", "tags": ["v1"]},
                {"id": "b", "kind": "image", "updated": "-40d", "tags": ["v2"]},
                {"id": "c", "kind": "image", "updated": "-1d", "tags": ["latest"]},
                {"id": "stray", "kind": "image", "updated": "-40d"},
            ]
        }
    }
}
RULE = {"name": "grace", "filter": ["app:^v"], "ago": "30d", "untagged": True, "grace": "7d"}


def state(emu: EmulatorServer) -> tuple[set[str], int]:
    repo = emu.dump()["repositories"]["app"]
    return set(repo["tags"]), len(repo["manifests"])


async def purge(emu: EmulatorServer, storage: StorageAccount, now: datetime) -> Any:
    settings = {
        "PURGE_REGISTRY": emu.login_server, "PURGE_ALLOWED_HOSTS": "127.0.0.1",
        "PURGE_CA_FILE": emu.ca_file, "PURGE_RULES": json.dumps([RULE]),
        "PURGE_USERNAME": emu.username or "", "PURGE_PASSWORD": emu.password or "",
        "PURGE_HISTORY": storage.connection_string,
    }  # fmt: skip
    # the fixture's own container, so that tests do not read each other's runs
    history = HistorySettings(
        connection_string=storage.connection_string, container=storage.container
    )
    config = replace(load_settings(settings), history=history)
    return config, await run_recorded(
        history,
        registry=emu.login_server,
        source="test",
        dry_run=False,
        run=functools.partial(run_purge, config, dry_run=False, now=now),
        rules=config.rules,
    )


async def test_a_grace_keeps_untagged_images_until_it_is_over(
    emulator_factory: Any, storage: StorageAccount
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    now = datetime.now(timezone.utc)
    _, first = await purge(emu, storage, now)
    assert state(emu) == ({"latest"}, 3)  # v1, v2 untagged; their images wait; stray deleted
    kept = {k["digest"]: k["reason"] for k in first.to_dict()["kept"] if "digest" in k}
    assert (
        sum(r.startswith("grace: its last tag is deleted in this run") for r in kept.values()) == 2
    )

    _, early = await purge(emu, storage, now + timedelta(days=6))
    assert state(emu) == ({"latest"}, 3) and early.manifests_deleted == 0
    assert any("grace: untagged by this project at" in k["reason"] for k in early.to_dict()["kept"])

    await purge(emu, storage, now + timedelta(days=8))
    assert state(emu) == ({"latest"}, 1)  # the grace is over: both images go


async def test_an_undo_within_the_grace_brings_back_whole_images(
    emulator_factory: Any, storage: StorageAccount
) -> None:
    emu = emulator_factory(scenario=SCENARIO)
    before = emu.dump()["repositories"]["app"]["tags"]
    config, first = await purge(emu, storage, datetime.now(timezone.utc))
    assert config.history is not None
    store = config.history.open()
    registry = open_registry(config.connection)
    try:
        record = await read_record(store, first.run_id)
        result = await restore_run(record, registry, dry_run=False)
        assert {i.tag: i.status for i in result.items} == {"v1": "restored", "v2": "restored"}
        after = emu.dump()["repositories"]["app"]["tags"]
        assert {t: after[t]["digest"] for t in after} == {t: before[t]["digest"] for t in before}
        for tag in ("v1", "v2"):
            body = await registry.get_manifest("app", after[tag]["digest"])
            assert body.digest == before[tag]["digest"]
    finally:
        await registry.close()
        await store.close()


async def test_unreadable_history_stops_a_rule_with_grace(
    emulator_factory: Any, storage: StorageAccount
) -> None:
    from azure.storage.blob.aio import ContainerClient

    from purge.history.record import new_run_id
    from purge.history.store import record_name

    emu = emulator_factory(scenario=SCENARIO)
    run_id = new_run_id(datetime.now(timezone.utc) - timedelta(hours=1))
    async with ContainerClient.from_connection_string(
        storage.connection_string, storage.container
    ) as raw:
        await raw.create_container()
        await raw.upload_blob(record_name(run_id), b"{broken")
    before = emu.dump()["repositories"]
    _, report = await purge(emu, storage, datetime.now(timezone.utc))
    assert emu.dump()["repositories"] == before
    assert "the history a grace needs" in report.errors[0]["error"]
    assert run_id in report.errors[0]["error"] and "corrupt" in report.errors[0]["error"]
