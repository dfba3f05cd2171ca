"""Run-record stores against real storage: Azurite over its HTTP API, and a local folder.

Faults are real too: a wrong account key is answered 403 by Azurite, a closed port refuses the
connection, and a corrupt or newer-schema record is a blob uploaded with the SDK itself.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob.aio import ContainerClient

from purge.history.azurite import connection_string, free_port
from purge.history.record import HistoryError, RecordError, encode, new_run_id
from purge.history.store import (
    FolderStore,
    Store,
    blob_store_from_connection_string,
    list_records,
    read_record,
    record_name,
)
from tests.fixtures.storage import StorageAccount

START = datetime(2026, 12, 1, 3, 0, 0, tzinfo=timezone.utc)


def record(run_id: str, started: datetime) -> bytes:
    return encode(
        run_id=run_id, registry="r.azurecr.io", source="timer", started=started,
        state="finished", planned=[], report={"totals": {"tagsDeleted": 1}}, summary="done",
    )  # fmt: skip


@pytest.fixture(params=["blob", "folder"])
def store(request: Any, storage: StorageAccount, tmp_path: Path) -> Store:
    if request.param == "blob":
        return blob_store_from_connection_string(storage.connection_string, storage.container)
    return FolderStore(tmp_path / "runs")


async def test_records_list_newest_first_in_pages_and_read_back(store: Store) -> None:
    runs = [(new_run_id(START + timedelta(hours=h)), START + timedelta(hours=h)) for h in range(5)]
    try:
        assert (await list_records(store, 10))[0] == []  # nothing yet, not an error
        for run_id, started in runs:
            await store.write(run_id, record(run_id, started))
        newest_first = [run_id for run_id, _ in reversed(runs)]
        first, cursor = await list_records(store, 2)
        assert [r["id"] for r in first] == newest_first[:2] and cursor is not None
        second, cursor = await list_records(store, 2, cursor)
        assert [r["id"] for r in second] == newest_first[2:4] and cursor is not None
        third, cursor = await list_records(store, 2, cursor)
        assert [r["id"] for r in third] == newest_first[4:] and cursor is None
        assert first[0]["summary"] == "done" and first[0]["totals"] == {"tagsDeleted": 1}
        one = await read_record(store, runs[0][0])
        assert one.started == runs[0][1] and one.state == "finished"
        with pytest.raises(HistoryError, match="no run"):
            await read_record(store, new_run_id(START - timedelta(days=1)))
    finally:
        await store.close()


async def test_prune_removes_only_records_older_than_the_cutoff(store: Store) -> None:
    old, new = new_run_id(START - timedelta(days=91)), new_run_id(START)
    try:
        await store.write(old, record(old, START - timedelta(days=91)))
        await store.write(new, record(new, START))
        assert await store.prune(START - timedelta(days=90)) == 1
        assert [r["id"] for r in (await list_records(store, 10))[0]] == [new]
    finally:
        await store.close()


async def test_a_wrong_account_key_is_a_clear_permission_error(storage: StorageAccount) -> None:
    wrong = connection_string(storage.server.port, "d3Jvbmcta2V5" * 8)
    store = blob_store_from_connection_string(wrong, storage.container)
    run_id = new_run_id(START)
    try:
        with pytest.raises(HistoryError, match=r"permission denied \(HTTP 403"):
            await store.write(run_id, record(run_id, START))
        with pytest.raises(HistoryError, match="permission denied"):
            await list_records(store, 5)
    finally:
        await store.close()


async def test_unreachable_storage_is_a_clear_error() -> None:
    store = blob_store_from_connection_string(connection_string(free_port()), "purge-runs")
    run_id = new_run_id(START)
    try:
        with pytest.raises(HistoryError, match="unreachable"):
            await store.write(run_id, record(run_id, START))
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"\x00garbage", "corrupt: not JSON"), (None, "schema 7, newer than this version")],
)
async def test_corrupt_or_newer_records_in_the_container_are_reported(
    storage: StorageAccount, body: bytes | None, message: str
) -> None:
    run_id = new_run_id(START)
    data = body or json.dumps({**json.loads(record(run_id, START)), "schema": 7}).encode()
    async with ContainerClient.from_connection_string(
        storage.connection_string, storage.container
    ) as raw:
        await raw.create_container()
        await raw.upload_blob(record_name(run_id), data)
    store = blob_store_from_connection_string(storage.connection_string, storage.container)
    try:
        with pytest.raises(RecordError, match=message):
            await read_record(store, run_id)
        listed, _ = await list_records(store, 5)
        assert listed[0]["state"] == "unreadable" and message.split(",")[0] in listed[0]["error"]
    finally:
        await store.close()
