"""Report: what one run deleted (or would delete), kept and failed at, and its renderings.

`to_dict()` is the stable JSON shape of DESIGN.md section 1 (the HTTP answer, `--output json`
and the timer log): its field names are never renamed, only added to. In a dry run `deleted`
lists what would be deleted. Kept items and listed deletions are capped so that a registry of
millions of tags does not turn into a report of millions of lines; `keptCount` and `totals`
always have the full numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from purge.executor import ExecutionResult, ItemError
from purge.model import ManifestDeletion, Plan, TagDeletion

#: Kept entries listed in the report; beyond this only `keptCount` grows.
MAX_KEPT_ENTRIES = 10_000
#: Planned deletions listed in the report (`deleted`, `plan`, the text); beyond this only the
#: totals grow, and `deletedTruncated` says so. A dry run over a million tags would otherwise
#: hold (and log) a million entries; the totals stay exact whatever the size.
MAX_LISTED_DELETIONS = 50_000


#: Outcomes that count as deleted (in a dry run: would be deleted).
_DONE = ("deleted", "would_delete")


@dataclass(frozen=True, slots=True)
class _Entry:
    """One planned deletion and what became of it (the plan's own object, not a copy)."""

    repository: str
    rule: str
    item: TagDeletion | ManifestDeletion
    status: str
    dry_run: bool
    already_gone: bool


@dataclass
class _RuleSummary:
    name: str
    dry_run: bool
    repositories: int = 0
    planned: int = 0
    tags_deleted: int = 0
    manifests_deleted: int = 0
    errors: int = 0
    blocked: str | None = None
    #: Which of acr purge's phases the rule has, for its section headers.
    deletes_tags: bool = True
    deletes_manifests: bool = False
    #: The repositories the rule covered (each gets acr purge's section headers).
    repository_names: set[str] = field(default_factory=set)


@dataclass
class _RepositoryCounts:
    tags_deleted: int = 0
    manifests_deleted: int = 0
    kept: int = 0
    errors: int = 0
    bytes_freed: int = 0


@dataclass
class Report:
    registry: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    complete: bool = True
    kept: list[dict[str, Any]] = field(default_factory=list)
    kept_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: Not errors, but likely mistakes: e.g. a filter that matches no repository.
    warnings: list[str] = field(default_factory=list)
    #: Every planned deletion with its outcome, as compact records: a dry run over a million
    #: tags plans a million deletions, and dicts per entry cost kilobytes each.
    entries: list[_Entry] = field(default_factory=list)
    #: Planned deletions not listed because of MAX_LISTED_DELETIONS.
    unlisted: int = 0
    tags_deleted: int = 0
    manifests_deleted: int = 0
    #: (kind, dry run) -> count of done deletions, for acr purge's "Number of ..." lines.
    done: dict[tuple[str, bool], int] = field(default_factory=dict)
    bytes_freed: int = 0
    rules: dict[str, _RuleSummary] = field(default_factory=dict)
    repositories: dict[str, _RepositoryCounts] = field(default_factory=dict)
    #: Why the run is incomplete, e.g. "time budget of 200s ran out".
    incomplete_reason: str | None = None
    #: The run history's id of this run (purge.history), when it was recorded.
    run_id: str | None = None

    # --- collecting --------------------------------------------------------------------

    def start_rule(
        self,
        name: str,
        dry_run: bool,
        *,
        deletes_tags: bool = True,
        deletes_manifests: bool = False,
    ) -> None:
        self.rules[name] = _RuleSummary(
            name, dry_run, deletes_tags=deletes_tags, deletes_manifests=deletes_manifests
        )

    def add_error(self, repository: str, ref: str, error: str, *, rule: str | None = None) -> None:
        self.errors.append({"repository": repository, "ref": ref, "error": error, "rule": rule})
        if rule in self.rules:
            self.rules[rule].errors += 1
        if repository != "*":  # also before the repository's first result (a failed re-check)
            self._repository(repository).errors += 1

    def add_warning(self, text: str) -> None:
        self.warnings.append(text)

    def mark_incomplete(self, reason: str) -> None:
        self.complete = False
        self.incomplete_reason = self.incomplete_reason or reason

    def add_kept(self, plan: Plan) -> None:
        counts = self._repository(plan.repository)
        counts.kept += len(plan.kept)
        self.kept_count += len(plan.kept)
        for keep in plan.kept:
            if len(self.kept) >= MAX_KEPT_ENTRIES:
                break
            key = "tag" if keep.kind == "tag" else "digest"
            self.kept.append(
                {
                    "repository": plan.repository,
                    key: keep.ref,
                    "reason": keep.reason,
                    "rule": plan.rule,
                }
            )

    def add_planning_errors(self, plan: Plan) -> None:
        for text in plan.errors:
            self.add_error(plan.repository, "plan", text, rule=plan.rule)

    def add_blocked(self, plans: Iterable[Plan], rule: str, reason: str) -> None:
        """A rule over its --max-deletions: record its plans as blocked, delete nothing."""
        summary = self.rules[rule]
        summary.blocked = reason
        self.add_error(
            "*", f"rule:{rule}", f"nothing deleted for rule {rule!r}: {reason}", rule=rule
        )
        for plan in plans:
            summary.repositories += 1
            summary.repository_names.add(plan.repository)
            summary.planned += plan.deletion_count
            self.add_kept(plan)
            self.add_planning_errors(plan)
            self._add_entries(plan, summary.dry_run, {}, "blocked")

    def add_result(self, result: ExecutionResult) -> None:
        """Record one repository's executed (or dry-run) plan."""
        plan = result.plan
        summary = self.rules.setdefault(plan.rule, _RuleSummary(plan.rule, result.dry_run))
        summary.repositories += 1
        summary.repository_names.add(plan.repository)
        summary.planned += plan.deletion_count
        counts = self._repository(plan.repository)
        self.add_kept(plan)
        self.add_planning_errors(plan)
        for error in result.errors:
            self._add_item_error(error, plan.rule)
        outcomes: dict[int, tuple[str, bool]] = {}
        for tag in result.tags:
            outcomes[id(tag.deletion)] = (tag.status, tag.already_gone)
            if tag.status in _DONE:
                summary.tags_deleted += 1
                counts.tags_deleted += 1
                self.tags_deleted += 1
                self._count_done("tag", result.dry_run)
        for manifest in result.manifests:
            outcomes[id(manifest.deletion)] = (manifest.status, manifest.already_gone)
            if manifest.status in _DONE:
                summary.manifests_deleted += 1
                counts.manifests_deleted += 1
                self.manifests_deleted += 1
                self._count_done("manifest", result.dry_run)
                freed = 0 if manifest.already_gone else (manifest.deletion.size or 0)
                counts.bytes_freed += freed
                self.bytes_freed += freed
        self._add_entries(plan, result.dry_run, outcomes, None)
        if not result.complete:
            self.mark_incomplete("the time budget ran out before every deletion started")

    def finish(self, finished_at: datetime) -> None:
        self.finished_at = finished_at

    # --- renderings ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "dryRun": self.dry_run,
            "complete": self.complete,
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at) if self.finished_at else None,
            "deleted": {"tags": self.deleted_tags, "manifests": self.deleted_manifests},
            "kept": list(self.kept),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "totals": {
                "tagsDeleted": self.tags_deleted,
                "manifestsDeleted": self.manifests_deleted,
                "bytesFreed": self.bytes_freed,
                "errors": len(self.errors),
            },
            "freedBytesIsUpperBound": True,
            "incompleteReason": self.incomplete_reason,
            "run": self.run_id,
            "keptCount": self.kept_count,
            "keptTruncated": self.kept_count > len(self.kept),
            "deletedTruncated": self.unlisted > 0,
            "unlistedDeletions": self.unlisted,
            "rules": [
                {
                    "name": r.name,
                    "dryRun": r.dry_run,
                    "repositories": r.repositories,
                    "planned": r.planned,
                    "tagsDeleted": r.tags_deleted,
                    "manifestsDeleted": r.manifests_deleted,
                    "errors": r.errors,
                    "blocked": r.blocked,
                }
                for r in self.rules.values()
            ],
            "repositories": {
                name: {
                    "tagsDeleted": c.tags_deleted,
                    "manifestsDeleted": c.manifests_deleted,
                    "kept": c.kept,
                    "errors": c.errors,
                    "bytesFreed": c.bytes_freed,
                }
                for name, c in sorted(self.repositories.items())
            },
            "plan": self.plan_entries,
        }

    def summary_line(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        state = "complete" if self.complete else "INCOMPLETE (run again to continue)"
        return (
            f"purge {self.registry} ({'dry run' if self.dry_run else 'real run'}): {verb} "
            f"{self.tags_deleted} tags and {self.manifests_deleted} manifests, "
            f"up to {human_bytes(self.bytes_freed)} freed, kept {self.kept_count}, "
            f"{len(self.errors)} errors, {state}"
        )

    # --- internals ---------------------------------------------------------------------

    def _repository(self, name: str) -> _RepositoryCounts:
        return self.repositories.setdefault(name, _RepositoryCounts())

    def _add_item_error(self, error: ItemError, rule: str) -> None:
        self.add_error(error.repository, error.ref, error.error, rule=rule)

    def _add_entries(
        self,
        plan: Plan,
        dry_run: bool,
        outcomes: dict[int, tuple[str, bool]],
        default: str | None,
    ) -> None:
        items: list[TagDeletion | ManifestDeletion] = [*plan.tag_deletions]
        items += plan.manifest_deletions
        for item in items:
            if len(self.entries) >= MAX_LISTED_DELETIONS:
                self.unlisted += 1
                continue
            status, gone = outcomes.get(id(item), ("not_started", False))
            self.entries.append(
                _Entry(plan.repository, plan.rule, item, default or status, dry_run, gone)
            )

    def _count_done(self, kind: str, dry_run: bool) -> None:
        self.done[(kind, dry_run)] = self.done.get((kind, dry_run), 0) + 1

    @property
    def deleted_tags(self) -> list[dict[str, Any]]:
        """`deleted.tags` of the JSON report: deleted, or in a dry run to be deleted."""
        return [
            {
                "repository": e.repository,
                "tag": e.item.tag,
                "digest": e.item.digest,
                "reason": e.item.reason,
                "rule": e.rule,
                "dryRun": e.dry_run,
                "alreadyGone": e.already_gone,
            }
            for e in self.entries
            if isinstance(e.item, TagDeletion) and e.status in _DONE
        ]

    @property
    def deleted_manifests(self) -> list[dict[str, Any]]:
        """`deleted.manifests` of the JSON report."""
        return [
            {
                "repository": e.repository,
                "digest": e.item.digest,
                "tags": list(e.item.tags),
                "size": e.item.size,
                "reason": e.item.reason,
                "rule": e.rule,
                "dryRun": e.dry_run,
                "alreadyGone": e.already_gone,
            }
            for e in self.entries
            if isinstance(e.item, ManifestDeletion) and e.status in _DONE
        ]

    @property
    def plan_entries(self) -> list[dict[str, Any]]:
        """`plan` of the JSON report: every planned deletion with its outcome."""
        return [
            {
                "repository": e.repository,
                "rule": e.rule,
                "kind": "tag" if isinstance(e.item, TagDeletion) else "manifest",
                "ref": e.item.tag if isinstance(e.item, TagDeletion) else e.item.digest,
                "digest": e.item.digest,
                "reason": e.item.reason,
                "removedWith": e.item.removed_with,
                "status": e.status,
                "dryRun": e.dry_run,
            }
            for e in self.entries
        ]


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"  # pragma: no cover


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
