"""The run record, schema 1: the JSON report plus the write-ahead plan, one document per run.

A record is written twice or more: `"state": "running"` with every deletion the run may make
(`planned`, appended repository by repository before that repository's first delete), then
`"state": "finished"` with the report. A record still `running` after the run's time is a run
that crashed: its `planned` list is everything that may have been deleted. Readers refuse a
record from a newer schema instead of guessing at it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from purge.isotime import parse_utc

SCHEMA = 1
#: `20261202T130501Z-a1b2c3`: the start time (UTC, to the second) and a random suffix.
RUN_ID = re.compile(r"^(?P<time>\d{8}T\d{6}Z)-[0-9a-f]{6}$")
_ID_TIME = "%Y%m%dT%H%M%SZ"


class HistoryError(Exception):
    """Run history could not be written or read; the message says which record and why."""


class RecordError(HistoryError):
    """A stored record is corrupt, or from a schema this version cannot read."""


def new_run_id(started: datetime) -> str:
    return f"{started.astimezone(timezone.utc).strftime(_ID_TIME)}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    """The id itself if well-formed; else HistoryError (ids name blobs and files: no paths)."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise HistoryError(
            f"run id {run_id!r} is malformed: expected e.g. '20261202T130501Z-a1b2c3' "
            "(as `python -m purge runs` lists them)"
        )
    return run_id


def run_started(run_id: str) -> datetime:
    match = RUN_ID.match(check_run_id(run_id))
    assert match is not None
    return datetime.strptime(match["time"], _ID_TIME).replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class PlannedTag:
    repository: str
    rule: str
    tag: str
    digest: str


@dataclass(frozen=True)
class PlannedManifest:
    repository: str
    rule: str
    digest: str
    media_type: str | None
    tags: tuple[str, ...]


Planned = PlannedTag | PlannedManifest


def planned_to_json(item: Planned) -> dict[str, Any]:
    if isinstance(item, PlannedTag):
        return {
            "kind": "tag",
            "repository": item.repository,
            "rule": item.rule,
            "tag": item.tag,
            "digest": item.digest,
        }
    return {
        "kind": "manifest",
        "repository": item.repository,
        "rule": item.rule,
        "digest": item.digest,
        "mediaType": item.media_type,
        "tags": list(item.tags),
    }


def encode(
    *,
    run_id: str,
    registry: str,
    source: str,
    started: datetime,
    state: str,
    planned: Sequence[Planned],
    report: dict[str, Any] | None,
    summary: str | None,
) -> bytes:
    document = {
        "schema": SCHEMA,
        "id": run_id,
        "registry": registry,
        "source": source,
        "state": state,
        "startedAt": _iso(started),
        "updatedAt": _iso(datetime.now(timezone.utc)),
        "summary": summary,
        "planned": [planned_to_json(item) for item in planned],
        "report": report,
    }
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class RunRecord:
    """A record as read back: the fields restore and the listings use, plus the raw document."""

    id: str
    registry: str
    state: str
    started: datetime
    summary: str | None
    planned: tuple[Planned, ...]
    document: dict[str, Any]

    def overview(self) -> dict[str, Any]:
        """One line of `GET /api/purge/runs` / `python -m purge runs`."""
        report = self.document.get("report") or {}
        return {
            "id": self.id,
            "registry": self.registry,
            "state": self.state,
            "source": self.document.get("source"),
            "startedAt": self.document.get("startedAt"),
            "finishedAt": report.get("finishedAt"),
            "summary": self.summary,
            "planned": len(self.planned),
            "totals": report.get("totals"),
        }


def decode(run_id: str, data: bytes) -> RunRecord:
    """Parse and check a stored record; RecordError says exactly what is wrong with it."""
    where = f"run record {run_id!r}"
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"{where} is corrupt: not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise RecordError(f"{where} is corrupt: not a JSON object")
    schema = document.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise RecordError(f"{where} is corrupt: no integer 'schema'")
    if schema > SCHEMA:
        raise RecordError(
            f"{where} has schema {schema}, newer than this version reads ({SCHEMA}): "
            "upgrade acr-purge-function to read it"
        )
    if schema < 1:
        raise RecordError(f"{where} is corrupt: schema {schema} does not exist")
    try:
        if document["id"] != run_id:
            raise RecordError(f"{where} is corrupt: it says it is run {document['id']!r}")
        started = parse_utc(document["startedAt"])
        if started is None:
            raise RecordError(f"{where} is corrupt: unreadable startedAt")
        planned = tuple(_planned_from_json(item) for item in document["planned"])
        state = document["state"]
        registry = document["registry"]
        if not isinstance(state, str) or not isinstance(registry, str):
            raise TypeError("state and registry must be strings")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"{where} is corrupt: {type(exc).__name__}: {exc}") from exc
    summary = document.get("summary")
    return RunRecord(
        run_id,
        registry,
        state,
        started,
        summary if isinstance(summary, str) else None,
        planned,
        document,
    )


def _planned_from_json(item: Any) -> Planned:
    if not isinstance(item, dict):
        raise TypeError("a planned entry is not an object")
    kind = item["kind"]
    repository, rule, digest = (_text(item, key) for key in ("repository", "rule", "digest"))
    if kind == "tag":
        return PlannedTag(repository, rule, _text(item, "tag"), digest)
    if kind == "manifest":
        media_type = item.get("mediaType")
        tags = item.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise TypeError("manifest tags must be a list of strings")
        return PlannedManifest(
            repository,
            rule,
            digest,
            media_type if isinstance(media_type, str) else None,
            tuple(tags),
        )
    raise ValueError(f"unknown planned kind {kind!r}")


def _text(item: dict[str, Any], key: str) -> str:
    value = item[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key!r} must be a non-empty string")
    return value


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
