"""Write-ahead for one real run: its record is written before the first delete and after the last.

`Journal.before_delete(plan)` adds a repository's planned deletions to the record and writes it
before that repository's first delete; when the write fails it raises, and the service deletes
nothing there (fail closed). Concurrent repositories share writes: one that waits for the lock
finds its deletions already written by the write in front of it, so a run of many repositories
costs far fewer writes than repositories. `run_recorded` wraps a whole run: it writes a first
record before anything else, so a store that cannot be written stops the run before any listing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from purge.history.record import (
    HistoryError,
    Planned,
    PlannedManifest,
    PlannedTag,
    encode,
    new_run_id,
)
from purge.history.settings import HistorySettings
from purge.history.store import Store, cutoff
from purge.model import Plan
from purge.report import Report

log = logging.getLogger("purge.history")


class Journal:
    """The record of one run as it goes: `open`, `before_delete` per repository, `finish`."""

    def __init__(self, store: Store, *, registry: str, source: str, started: datetime) -> None:
        self.store = store
        self.registry = registry
        self.source = source
        self.started = started
        self.run_id = new_run_id(started)
        self.planned: list[Planned] = []
        self._lock = asyncio.Lock()
        self._wanted = 0
        self._written = 0

    async def _write(self, state: str, report: Report | None = None) -> None:
        data = encode(
            run_id=self.run_id,
            registry=self.registry,
            source=self.source,
            started=self.started,
            state=state,
            planned=self.planned,
            report=report.to_dict() if report is not None else None,
            summary=report.summary_line() if report is not None else None,
        )
        await self.store.write(self.run_id, data)

    async def open(self) -> None:
        """The first record, before the run lists anything; raises HistoryError."""
        await self._write("running")

    async def before_delete(self, plan: Plan) -> None:
        """Record `plan`'s deletions; returns once they are stored. Raises HistoryError."""
        media = plan_media_types(plan)
        self.planned += [
            PlannedTag(plan.repository, plan.rule, t.tag, t.digest) for t in plan.tag_deletions
        ]
        self.planned += [
            PlannedManifest(plan.repository, plan.rule, m.digest, media.get(m.digest), m.tags)
            for m in plan.manifest_deletions
        ]
        self._wanted += 1
        mine = self._wanted
        async with self._lock:
            if self._written >= mine:
                return  # the write in front of this one already stored these deletions
            target = self._wanted
            await self._write("running")
            self._written = target

    async def finish(self, report: Report) -> None:
        async with self._lock:
            await self._write("finished", report)


def plan_media_types(plan: Plan) -> dict[str, str | None]:
    return {m.digest: getattr(m, "media_type", None) for m in plan.manifest_deletions}


async def run_recorded(
    history: HistorySettings | None,
    *,
    registry: str,
    source: str,
    dry_run: bool,
    run: Callable[..., Any],
    prune: bool = False,
) -> Report:
    """Run `run(before_delete=...)` (a partial of purge.service.run_purge) with its record.

    Dry runs and runs without history are not recorded. A record that cannot be written first
    stops the run before anything is listed: the returned report says why, nothing is deleted.
    """
    if history is None or dry_run:
        report: Report = await run()
        return report
    store = history.open()
    try:
        journal = Journal(store, registry=registry, source=source, started=_now())
        try:
            await journal.open()
        except HistoryError as exc:
            return refused_report(registry, str(exc))
        report = await run(before_delete=journal.before_delete)
        report.run_id = journal.run_id
        try:
            await journal.finish(report)
        except HistoryError as exc:
            report.add_error(
                "*",
                "history",
                f"the run's outcome could not be recorded ({exc}); run {journal.run_id} lists "
                "every deletion it planned",
            )
        if prune:
            try:
                removed = await store.prune(cutoff(history.days))
                if removed:
                    log.info(
                        "run history: removed %d records older than %d days", removed, history.days
                    )
            except HistoryError as exc:
                log.warning("run history: old records were not removed: %s", exc)
        return report
    finally:
        await store.close()


def refused_report(registry: str, reason: str) -> Report:
    """The report of a run that did not start because its record could not be written."""
    report = Report(registry, False, _now())
    report.add_error(
        "*",
        "history",
        f"run history is on but the run record could not be written: {reason}; nothing deleted "
        "(set PURGE_HISTORY=off to run without history)",
    )
    report.mark_incomplete("the run record could not be written; nothing was deleted")
    report.finish(_now())
    return report


def _now() -> datetime:
    return datetime.now(timezone.utc)
