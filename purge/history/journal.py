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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from purge.history.grace import load_untagged_times, window_start
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

if TYPE_CHECKING:
    from purge.config.rules import Rule

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
        #: The grace facts (purge.service.RunHooks), set by run_recorded.
        self.untagged_at: Mapping[str, Mapping[str, datetime]] = {}
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
        self.planned += [
            PlannedTag(plan.repository, plan.rule, t.tag, t.digest) for t in plan.tag_deletions
        ]
        self.planned += [
            PlannedManifest(plan.repository, plan.rule, m.digest, m.media_type, m.tags)
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


@dataclass
class ReadOnlyHooks:
    """A dry run's hooks: the grace facts, and no record (dry runs are not recorded)."""

    untagged_at: Mapping[str, Mapping[str, datetime]]

    async def before_delete(self, plan: Plan) -> None:
        raise HistoryError("a dry run writes no record")  # never called: dry runs do not delete


async def run_recorded(
    history: HistorySettings | None,
    *,
    registry: str,
    source: str,
    dry_run: bool,
    run: Callable[..., Awaitable[Report]],
    rules: Sequence[Rule] = (),
    prune: bool = False,
) -> Report:
    """Run `run(hooks=...)` (a partial of purge.service.run_purge) with its record.

    Real runs write a record first: if that fails, the run stops before anything is listed and
    the returned report says why. Dry runs write nothing, but read the history as the real run
    would when a rule has a grace (the same plan either way). Without history: just `run()`.
    """
    if history is None:
        return await run()
    store = history.open()
    try:
        started = _now()
        untagged_at: dict[str, dict[str, datetime]] = {}
        graces = [rule.grace for rule in rules if rule.grace is not None]
        if graces:
            try:
                untagged_at = await load_untagged_times(
                    store, registry, since=window_start(started, max(graces))
                )
            except HistoryError as exc:
                return refused_report(registry, dry_run, f"the history a grace needs: {exc}")
        if dry_run:
            return await run(hooks=ReadOnlyHooks(untagged_at))
        journal = Journal(store, registry=registry, source=source, started=started)
        journal.untagged_at = untagged_at
        try:
            await journal.open()
        except HistoryError as exc:
            return refused_report(registry, dry_run, f"the run record could not be written: {exc}")
        report = await run(hooks=journal)
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
            await _prune(store, history.days)
        return report
    finally:
        await store.close()


async def _prune(store: Store, days: int) -> None:
    try:
        removed = await store.prune(cutoff(days))
    except HistoryError as exc:
        log.warning("run history: old records were not removed: %s", exc)
        return
    if removed:
        log.info("run history: removed %d records older than %d days", removed, days)


def refused_report(registry: str, dry_run: bool, reason: str) -> Report:
    """The report of a run that did not start: run history is on, and `reason` failed."""
    report = Report(registry, dry_run, _now())
    report.add_error(
        "*", "history", f"run history is on, but {reason}; nothing deleted, nothing listed"
    )
    report.mark_incomplete("the run history could not be used; nothing was deleted")
    report.finish(_now())
    return report


def _now() -> datetime:
    return datetime.now(timezone.utc)
