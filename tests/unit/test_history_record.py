"""Run records: the schema-1 format, run ids and names, and the history settings."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from purge.history.record import (
    HistoryError,
    PlannedManifest,
    PlannedTag,
    RecordError,
    check_run_id,
    decode,
    encode,
    new_run_id,
    run_started,
)
from purge.history.settings import parse_history
from purge.history.store import record_name, run_id_of

START = datetime(2026, 12, 2, 13, 5, 1, tzinfo=timezone.utc)
OCI = "application/vnd.oci.image.manifest.v1+json"
PLANNED = [
    PlannedTag("app", "ci", "v1", "sha256:" + "a" * 64),
    PlannedManifest("app", "ci", "sha256:" + "b" * 64, OCI, ("v2",)),
]


def record_bytes(run_id: str, **changes: object) -> bytes:
    data = encode(
        run_id=run_id, registry="r.azurecr.io", source="timer", started=START, state="running",
        planned=PLANNED, report=None, summary=None,
    )  # fmt: skip
    document = json.loads(data)
    document.update(changes)
    return json.dumps(document).encode()


def test_a_record_reads_back_with_its_planned_deletions_and_media_types() -> None:
    run_id = new_run_id(START)
    record = decode(run_id, record_bytes(run_id))
    assert record.planned == tuple(PLANNED)
    assert record.state == "running" and record.started == START
    assert json.loads(record_bytes(run_id))["schema"] == 1
    assert record.overview()["planned"] == 2


def test_a_record_from_a_newer_schema_is_refused_with_a_clear_error() -> None:
    run_id = new_run_id(START)
    with pytest.raises(RecordError, match="schema 2, newer than this version reads"):
        decode(run_id, record_bytes(run_id, schema=2))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"id": "x"}', "no integer 'schema'"),
        (b'{"schema": 1, "id": "ID"}', "KeyError"),
    ],
)
def test_a_corrupt_record_is_an_error_that_names_it(data: bytes, message: str) -> None:
    run_id = new_run_id(START)
    with pytest.raises(RecordError, match=message) as caught:
        decode(run_id, data.replace(b"ID", run_id.encode()))
    assert run_id in str(caught.value)


def test_a_record_with_a_malformed_planned_entry_is_corrupt() -> None:
    run_id = new_run_id(START)
    with pytest.raises(RecordError, match="corrupt"):
        decode(run_id, record_bytes(run_id, planned=[{"kind": "tag", "repository": "app"}]))


def test_run_ids_are_checked_so_that_they_can_never_name_a_path() -> None:
    for bad in ("../etc/passwd", "20261202T130501Z-zzzzzz", "", "20261202T130501Z-a1b2c3/x"):
        with pytest.raises(HistoryError, match="malformed"):
            check_run_id(bad)
    assert run_started(new_run_id(START)) == START


def test_record_names_sort_newest_first() -> None:
    ids = [new_run_id(START + timedelta(minutes=m)) for m in (0, 1, 60, 60 * 24 * 400)]
    names = sorted(record_name(run_id) for run_id in ids)
    assert [run_id_of(name) for name in names] == list(reversed(ids))


def test_history_is_on_in_the_app_when_it_has_a_storage_connection() -> None:
    errors: list[str] = []
    found = parse_history(None, None, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, errors)
    assert found is not None and found.connection_string == "UseDevelopmentStorage=true"
    assert found.days == 90 and not errors
    assert parse_history(None, None, {}, errors) is None
    assert parse_history("off", None, {"AzureWebJobsStorage": "x"}, errors) is None
    assert not errors


def test_identity_based_storage_uses_the_account_url_and_client_id() -> None:
    environ = {"AzureWebJobsStorage__accountName": "stacct", "AzureWebJobsStorage__clientId": "c"}
    found = parse_history(None, "30", environ, [])
    assert found is not None
    assert found.account_url == "https://stacct.blob.core.windows.net"
    assert (found.client_id, found.days, found.container) == ("c", 30, "purge-runs")
    uri = {"AzureWebJobsStorage__blobServiceUri": "https://x.blob.core.windows.net"}
    other = parse_history(None, None, uri, [])
    assert other is not None and other.account_url == "https://x.blob.core.windows.net"


def test_history_on_without_storage_and_bad_values_are_errors(tmp_path: Path) -> None:
    errors: list[str] = []
    assert parse_history("on", "0", {}, errors) is None
    assert any(e.startswith("PURGE_HISTORY: 'on' needs") for e in errors)
    assert any(e.startswith("PURGE_HISTORY_DAYS: '0' is not a whole number") for e in errors)
    errors.clear()
    parse_history("sometimes", None, {}, errors)
    assert errors and "is not 'on', 'off'" in errors[0]
    errors.clear()
    parse_history("http://storage.example.com/acct", None, {}, errors)
    assert errors and "must be https" in errors[0]
    folder = parse_history(str(tmp_path), None, {}, [])
    assert folder is not None and folder.folder == tmp_path
    url = parse_history("https://a.blob.core.windows.net/mine?sv=1&sig=2", None, {}, [])
    assert url is not None and url.container == "mine"
    assert url.describe() == "https://a.blob.core.windows.net/mine"  # no SAS shown
