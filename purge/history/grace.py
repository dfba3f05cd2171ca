"""The grace period's facts: when this project last untagged each manifest, read from history.

A rule with `grace` deletes a manifest that this project untagged no earlier than the grace
after its last tag went, so that an undo during the grace brings back the whole image. The time
a tag went is the end of the run that deleted it (its `finishedAt`), or for a run that never
finished (a crash) its record's last write, which is within one function timeout of the delete.
Only runs of the same registry count. Reading the history is part of the plan: when it fails,
the run deletes nothing (see journal.run_recorded).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from purge.history.record import PlannedTag, RunRecord
from purge.history.store import Store, read_record
from purge.isotime import parse_utc

#: repository -> manifest digest -> when this project last deleted a tag of it.
UntaggedAt = Mapping[str, Mapping[str, datetime]]


def untagged_times(records: list[RunRecord], registry: str) -> dict[str, dict[str, datetime]]:
    times: dict[str, dict[str, datetime]] = {}
    for record in records:
        if record.registry.lower() != registry.lower():
            continue
        report = record.document.get("report") or {}
        moment = parse_utc(report.get("finishedAt")) or parse_utc(record.document.get("updatedAt"))
        moment = max(moment or record.started, record.started)
        for item in record.planned:
            if isinstance(item, PlannedTag):
                known = times.setdefault(item.repository, {})
                if item.digest not in known or known[item.digest] < moment:
                    known[item.digest] = moment
    return times


async def load_untagged_times(
    store: Store, registry: str, *, since: datetime
) -> dict[str, dict[str, datetime]]:
    """Read every record of runs started at or after `since` (newest first, page by page).

    Raises HistoryError (RecordError included) when a record cannot be read: a grace decision
    must not rest on a history with holes in it.
    """
    records: list[RunRecord] = []
    cursor: str | None = None
    while True:
        page = await store.page(100, cursor)
        for run_id in page.ids:
            record = await read_record(store, run_id)
            if record.started < since:
                return untagged_times(records, registry)
            records.append(record)
        if page.cursor is None:
            return untagged_times(records, registry)
        cursor = page.cursor


def window_start(now: datetime, longest_grace: timedelta) -> datetime:
    """Runs older than the longest grace cannot hold back anything; a day more covers a run that
    started before and finished within the window."""
    return now - longest_grace - timedelta(days=1)
