"""Report: what one run deleted (or would delete), kept and failed at, and its renderings.

`to_dict()` is the stable JSON shape of DESIGN.md section 1 (the HTTP answer, `--output json`
and the timer log): its field names are never renamed, only added to. In a dry run `deleted`
lists what would be deleted. Kept items are capped so that a registry of millions of tags does
not turn into a report of millions of lines; `keptCount` always has the full number.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from purge.executor import ExecutionResult, ItemError
from purge.planner import Plan

#: A cosign-style tag, `sha256-<64 hex>.sig|.att|.sbom`: shortened in tables to stay readable.
_COSIGN_TAG = re.compile(r"^(sha256-[0-9a-f]{12})[0-9a-f]{52}(\.[a-z]+)$")

#: Kept entries listed in the report; beyond this only `keptCount` grows.
MAX_KEPT_ENTRIES = 10_000

_STATUS_TEXT = {
    "deleted": "deleted",
    "would_delete": "would delete",
    "failed": "FAILED",
    "not_started": "not started (time budget)",
    "blocked": "blocked (max deletions)",
}


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
    deleted_tags: list[dict[str, Any]] = field(default_factory=list)
    deleted_manifests: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    kept_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    plan_entries: list[dict[str, Any]] = field(default_factory=list)
    bytes_freed: int = 0
    rules: dict[str, _RuleSummary] = field(default_factory=dict)
    repositories: dict[str, _RepositoryCounts] = field(default_factory=dict)
    #: Why the run is incomplete, e.g. "time budget of 200s ran out".
    incomplete_reason: str | None = None

    # --- collecting --------------------------------------------------------------------

    def start_rule(self, name: str, dry_run: bool) -> None:
        self.rules[name] = _RuleSummary(name, dry_run)

    def add_error(self, repository: str, ref: str, error: str, *, rule: str | None = None) -> None:
        self.errors.append({"repository": repository, "ref": ref, "error": error, "rule": rule})
        if rule in self.rules:
            self.rules[rule].errors += 1
        if repository in self.repositories:
            self.repositories[repository].errors += 1

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
            summary.planned += plan.deletion_count
            self.add_kept(plan)
            self.add_planning_errors(plan)
            self._add_plan_entries(plan, summary.dry_run, {}, "blocked")

    def add_result(self, result: ExecutionResult) -> None:
        """Record one repository's executed (or dry-run) plan."""
        plan = result.plan
        summary = self.rules.setdefault(plan.rule, _RuleSummary(plan.rule, result.dry_run))
        summary.repositories += 1
        summary.planned += plan.deletion_count
        counts = self._repository(plan.repository)
        self.add_kept(plan)
        self.add_planning_errors(plan)
        for error in result.errors:
            self._add_item_error(error, plan.rule)
        statuses: dict[int, str] = {}
        for tag in result.tags:
            statuses[id(tag.deletion)] = tag.status
            if tag.status in ("deleted", "would_delete"):
                d = tag.deletion
                self.deleted_tags.append(
                    {
                        "repository": plan.repository,
                        "tag": d.tag,
                        "digest": d.digest,
                        "reason": d.reason,
                        "rule": plan.rule,
                        "dryRun": result.dry_run,
                        "alreadyGone": tag.already_gone,
                    }
                )
                summary.tags_deleted += 1
                counts.tags_deleted += 1
        for manifest in result.manifests:
            statuses[id(manifest.deletion)] = manifest.status
            if manifest.status in ("deleted", "would_delete"):
                m = manifest.deletion
                self.deleted_manifests.append(
                    {
                        "repository": plan.repository,
                        "digest": m.digest,
                        "tags": list(m.tags),
                        "size": m.size,
                        "reason": m.reason,
                        "rule": plan.rule,
                        "dryRun": result.dry_run,
                        "alreadyGone": manifest.already_gone,
                    }
                )
                summary.manifests_deleted += 1
                counts.manifests_deleted += 1
                freed = 0 if manifest.already_gone else (m.size or 0)
                counts.bytes_freed += freed
                self.bytes_freed += freed
        self._add_plan_entries(plan, result.dry_run, statuses, None)
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
            "deleted": {"tags": list(self.deleted_tags), "manifests": list(self.deleted_manifests)},
            "kept": list(self.kept),
            "errors": list(self.errors),
            "totals": {
                "tagsDeleted": len(self.deleted_tags),
                "manifestsDeleted": len(self.deleted_manifests),
                "bytesFreed": self.bytes_freed,
                "errors": len(self.errors),
            },
            "freedBytesIsUpperBound": True,
            "incompleteReason": self.incomplete_reason,
            "keptCount": self.kept_count,
            "keptTruncated": self.kept_count > len(self.kept),
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
            "plan": list(self.plan_entries),
        }

    def summary_line(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        state = "complete" if self.complete else "INCOMPLETE (run again to continue)"
        return (
            f"purge {self.registry} ({'dry run' if self.dry_run else 'real run'}): {verb} "
            f"{len(self.deleted_tags)} tags and {len(self.deleted_manifests)} manifests, "
            f"up to {human_bytes(self.bytes_freed)} freed, kept {self.kept_count}, "
            f"{len(self.errors)} errors, {state}"
        )

    def render_text(self, width: int = 120) -> str:
        out = io.StringIO()
        console = Console(file=out, width=width, color_system=None, highlight=False)
        for table in self._repository_tables():
            console.print(table)
        if self.errors:
            table = Table(title="Errors", title_justify="left")
            for column in ("Repository", "Item", "Error"):
                table.add_column(column, overflow="fold")
            for e in self.errors:
                table.add_row(e["repository"], e["ref"], e["error"])
            console.print(table)
        for rule in self.rules.values():
            if rule.blocked:
                console.print(f"Rule {rule.name!r} deleted nothing: {rule.blocked}")
        console.print(self._acr_purge_lines(), markup=False)
        console.print(
            f"Estimated space freed: {human_bytes(self.bytes_freed)} (an upper bound: layers "
            "shared with kept images stay)",
            markup=False,
        )
        if not self.complete:
            console.print(
                f"Incomplete: {self.incomplete_reason}. Run again to continue.", markup=False
            )
        console.print(self.summary_line(), markup=False)
        return out.getvalue()

    # --- internals ---------------------------------------------------------------------

    def _repository(self, name: str) -> _RepositoryCounts:
        return self.repositories.setdefault(name, _RepositoryCounts())

    def _add_item_error(self, error: ItemError, rule: str) -> None:
        self.add_error(error.repository, error.ref, error.error, rule=rule)

    def _add_plan_entries(
        self, plan: Plan, dry_run: bool, statuses: dict[int, str], default: str | None
    ) -> None:
        for t in plan.tag_deletions:
            self.plan_entries.append(
                {
                    "repository": plan.repository,
                    "rule": plan.rule,
                    "kind": "tag",
                    "ref": t.tag,
                    "digest": t.digest,
                    "reason": t.reason,
                    "removedWith": t.removed_with,
                    "status": default or statuses.get(id(t), "not_started"),
                    "dryRun": dry_run,
                }
            )
        for m in plan.manifest_deletions:
            self.plan_entries.append(
                {
                    "repository": plan.repository,
                    "rule": plan.rule,
                    "kind": "manifest",
                    "ref": m.digest,
                    "digest": m.digest,
                    "reason": m.reason,
                    "removedWith": m.removed_with,
                    "status": default or statuses.get(id(m), "not_started"),
                    "dryRun": dry_run,
                }
            )

    def _repository_tables(self) -> list[Table]:
        """One table per repository: planned items with their outcome, kept items, errors."""
        rows: dict[str, list[tuple[str, str, str]]] = {name: [] for name in self.repositories}
        for entry in self.plan_entries:
            ref = _short_tag(entry["ref"]) if entry["kind"] == "tag" else _short(entry["ref"])
            status = _STATUS_TEXT.get(entry["status"], entry["status"])
            rows.setdefault(entry["repository"], []).append(
                (status, f"{entry['kind']} {ref}", entry["reason"])
            )
        for kept in self.kept:
            item = (
                f"tag {_short_tag(kept['tag'])}"
                if "tag" in kept
                else f"manifest {_short(kept['digest'])}"
            )
            rows.setdefault(kept["repository"], []).append(("kept", item, kept["reason"]))
        for error in self.errors:
            if error["repository"] in rows:
                rows[error["repository"]].append(("error", error["ref"], error["error"]))
        tables = []
        for repository in sorted(rows):
            table = Table(title=repository, title_justify="left")
            for column in ("Action", "Item", "Reason"):
                table.add_column(column, overflow="fold")
            for row in rows[repository]:
                table.add_row(*row)
            tables.append(table)
        return tables

    def _acr_purge_lines(self) -> str:
        lines: list[str] = []
        for dry in (True, False):
            tags = [t for t in self.deleted_tags if t["dryRun"] is dry]
            manifests = [m for m in self.deleted_manifests if m["dryRun"] is dry]
            if dry and not (tags or manifests) and not self.dry_run:
                continue
            if not dry and self.dry_run and not (tags or manifests):
                continue
            prefix = "Would delete: " if dry else "Deleted "
            lines += [f"{prefix}{self.registry}/{t['repository']}:{t['tag']}" for t in tags]
            lines += [f"{prefix}{self.registry}/{m['repository']}@{m['digest']}" for m in manifests]
            if dry:
                lines.append(f"Number of tags to be deleted: {len(tags)}")
                lines.append(f"Number of manifests to be deleted: {len(manifests)}")
            else:
                lines.append(f"Number of deleted tags: {len(tags)}")
                lines.append(f"Number of deleted manifests: {len(manifests)}")
        return "\n".join(lines)


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"  # pragma: no cover


def _short(digest: str) -> str:
    algorithm, _, hexdigits = digest.partition(":")
    return f"{algorithm}:{hexdigits[:12]}" if hexdigits else digest


def _short_tag(tag: str) -> str:
    """A cosign tag `sha256-<64 hex>.sig` shortened for tables; the full name is in the lines."""
    return _COSIGN_TAG.sub(r"\1…\2", tag)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
