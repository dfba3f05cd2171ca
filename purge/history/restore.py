"""Undo a run: put back every tag it deleted whose manifest still exists, on the same digest.

A manifest's bytes are read by digest and PUT under the tag: the registry computes the same
digest from the same bytes, so pulls by tag and by digest work as before (the PUT's answered
digest is checked). Each tag is looked up first and never moved: a tag that exists now on
another digest is reported, not changed. A manifest the run deleted cannot come back (its data
is gone): its tags are reported `not restorable: manifest deleted`. The dry run takes the same
path and skips only the PUT. Each item stands alone: one PUT is all or nothing, and a missing
push right fails that item with an error that names the role.

A restore has a time budget like a purge (the HTTP answer must beat Azure's 230 s limit): no
tag is started after it, those not started are listed, and the answer says `complete: false`.
Restoring again continues: a tag already back on its digest is reported `present`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from purge import budget
from purge.history.record import PlannedManifest, PlannedTag, RunRecord
from purge.model import short_digest

Status = Literal[
    "restored", "would_restore", "present", "conflict", "manifest_deleted", "failed", "not_started"
]


class RestoreRegistry(Protocol):
    """What a restore needs from a registry, beyond what a purge needs."""

    @property
    def login_server(self) -> str: ...

    def slot(self) -> AbstractAsyncContextManager[None]:
        """One of the registry's request slots: its one concurrency limit, held per tag."""
        ...

    async def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest the tag points at now, or None when there is no such tag."""
        ...

    async def read_manifest(self, repository: str, digest: str) -> tuple[bytes, str]:
        """The manifest's exact bytes and media type, verified against `digest`; NotFound."""
        ...

    async def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        """PUT the bytes under `tag`; answers the digest the registry stored."""
        ...


class RecordMismatch(ValueError):
    """The run was recorded for another registry than the one configured."""


@dataclass(frozen=True)
class TagRestore:
    repository: str
    tag: str
    digest: str
    status: Status
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class RestoreReport:
    run: str
    registry: str
    dry_run: bool
    items: tuple[TagRestore, ...]
    #: The budget in seconds, for the reason given when it ran out; None: no budget.
    budget: float | None = None

    def count(self, *statuses: Status) -> int:
        return sum(1 for item in self.items if item.status in statuses)

    @property
    def complete(self) -> bool:
        """Did every tag get its turn? False when the time budget stopped some from starting."""
        return self.count("not_started") == 0

    @property
    def incomplete_reason(self) -> str | None:
        if self.complete:
            return None
        return (
            f"the time budget of {self.budget or 0:g}s ran out before every tag was restored; "
            "restore again to continue"
        )

    @property
    def ok(self) -> bool:
        return self.complete and self.count("failed") == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "registry": self.registry,
            "dryRun": self.dry_run,
            "complete": self.complete,
            "incompleteReason": self.incomplete_reason,
            "tags": [item.to_dict() for item in self.items],
            "notStarted": [
                {"repository": i.repository, "tag": i.tag, "digest": i.digest}
                for i in self.items
                if i.status == "not_started"
            ],
            "totals": {
                "restored": self.count("restored", "would_restore"),
                "present": self.count("present"),
                "conflicts": self.count("conflict"),
                "notRestorable": self.count("manifest_deleted"),
                "failed": self.count("failed"),
                "notStarted": self.count("not_started"),
            },
        }

    def summary_line(self) -> str:
        verb = "would restore" if self.dry_run else "restored"
        line = (
            f"restore of run {self.run} on {self.registry}: {verb} "
            f"{self.count('restored', 'would_restore')} tags, {self.count('present')} already "
            f"in place, {self.count('conflict')} moved since (left alone), "
            f"{self.count('manifest_deleted')} not restorable (manifest deleted), "
            f"{self.count('failed')} failed"
        )
        if not self.complete:
            line += f", {self.count('not_started')} not started: {self.incomplete_reason}"
        return line

    def render_text(self) -> str:
        lines = [
            f"{item.status:16} {item.repository}:{item.tag} @{short_digest(item.digest)}  "
            f"{item.detail}"
            for item in self.items
        ]
        return "\n".join([*lines, self.summary_line()])


def tags_to_restore(record: RunRecord) -> list[PlannedTag]:
    """Each (repository, tag) the run planned to delete, once, in record order."""
    seen: dict[tuple[str, str], PlannedTag] = {}
    for item in record.planned:
        if isinstance(item, PlannedTag):
            seen.setdefault((item.repository, item.tag), item)
    return list(seen.values())


async def restore_run(
    record: RunRecord,
    registry: RestoreRegistry,
    *,
    dry_run: bool,
    budget_seconds: float | None = None,
) -> RestoreReport:
    """Put the run's deleted tags back where that is safe; every tag gets one outcome.

    Each tag holds one registry slot for its reads and its PUT (the registry's one limit, as
    for deletions). With a budget, the run's deadline bounds every request (purge.budget) and
    a tag whose turn comes after it is not started.
    """
    if record.registry.lower() != registry.login_server.lower():
        raise RecordMismatch(
            f"run {record.id} was recorded for registry {record.registry!r}, not "
            f"{registry.login_server!r}: restore it with that registry"
        )
    manifests = {(m.repository, m.digest) for m in record.planned if isinstance(m, PlannedManifest)}
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds

    async def one(item: PlannedTag) -> TagRestore:
        async with registry.slot():
            if budget.spent():
                return _not_started(item, "the time budget ran out before its turn")
            return await _restore_tag(
                item, registry, dry_run, (item.repository, item.digest) in manifests
            )

    with budget.run_deadline(deadline):
        items = await asyncio.gather(*map(one, tags_to_restore(record)))
    return RestoreReport(record.id, registry.login_server, dry_run, tuple(items), budget_seconds)


def _not_started(item: PlannedTag, why: str) -> TagRestore:
    return TagRestore(item.repository, item.tag, item.digest, "not_started", f"not started: {why}")


async def _restore_tag(
    item: PlannedTag, registry: RestoreRegistry, dry_run: bool, manifest_planned: bool
) -> TagRestore:
    from purge.executor import describe_failure
    from purge.registry.protocol import NotFound

    def outcome(status: Status, detail: str) -> TagRestore:
        return TagRestore(item.repository, item.tag, item.digest, status, detail)

    try:
        now = await registry.tag_digest(item.repository, item.tag)
    except budget.BudgetSpent:
        return _not_started(item, "the time budget ran out while reading the tag")
    except Exception as exc:
        return outcome("failed", describe_failure(exc, "read tag"))
    if now == item.digest:
        return outcome("present", "the tag is on its digest already")
    if now is not None:
        return outcome("conflict", f"the tag exists now on {now}; not moved")
    try:
        body, media_type = await registry.read_manifest(item.repository, item.digest)
    except NotFound:
        why = "deleted by this run" if manifest_planned else "deleted since"
        return outcome("manifest_deleted", f"not restorable: manifest deleted ({why})")
    except budget.BudgetSpent:
        return _not_started(item, "the time budget ran out while reading the manifest")
    except Exception as exc:
        return outcome("failed", describe_failure(exc, "read manifest"))
    if dry_run:
        return outcome("would_restore", f"would put the tag back on {item.digest}")
    try:
        stored = await registry.put_manifest(item.repository, item.tag, body, media_type)
    except budget.BudgetSpent:  # abandoned after the write grace: it may or may not be done
        return outcome(
            "failed",
            "push outcome unknown: the time budget ran out during the PUT; restore again "
            "(a tag that was put back is then reported present)",
        )
    except Exception as exc:
        return outcome("failed", describe_failure(exc, "push"))
    if stored != item.digest:
        return outcome("failed", f"the registry stored {stored}, not {item.digest}")
    return outcome("restored", f"tag put back on {item.digest}")


def restore_exit_code(report: RestoreReport) -> int:
    """0 when every tag got its outcome and none failed; 1 otherwise (run it again)."""
    return 0 if report.ok else 1


__all__: Sequence[str] = ("RestoreRegistry", "RestoreReport", "TagRestore", "restore_run")
