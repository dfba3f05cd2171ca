"""Text and tables for people (rich): loaded by the CLI and the demo only, never by the app.

The JSON report (purge.report) is what machines and the Functions host read.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from purge.model import short_digest, short_tag
from purge.report import Report, human_bytes

_STATUS_TEXT = {
    "deleted": "deleted",
    "would_delete": "would delete",
    "failed": "FAILED",
    "not_started": "not started (time budget)",
    "kept": "kept (changed during the run)",
    "unknown": "UNKNOWN (answer lost)",
    "blocked": "blocked (max deletions)",
}


def render_text(report: Report, width: int = 120) -> str:
    """Tables per repository, errors, acr purge's lines and the summary, as plain text."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False)
    for table in _repository_tables(report):
        console.print(table)
    if report.errors:
        table = Table(title="Errors", title_justify="left")
        for column in ("Repository", "Item", "Error"):
            table.add_column(column, overflow="fold")
        for e in report.errors:
            table.add_row(e["repository"], e["ref"], e["error"])
        console.print(table)
    for rule in report.rules.values():
        if rule.blocked:
            console.print(f"Rule {rule.name!r} deleted nothing: {rule.blocked}")
    console.print(acr_purge_lines(report), markup=False)
    console.print(
        f"Estimated space freed: {human_bytes(report.bytes_freed)} (an upper bound: layers "
        "shared with kept images stay)",
        markup=False,
    )
    if not report.complete:
        console.print(
            f"Incomplete: {report.incomplete_reason}. Run again to continue.", markup=False
        )
    console.print(report.summary_line(), markup=False)
    return out.getvalue()


def _repository_tables(report: Report) -> list[Table]:
    """One table per repository: planned items with their outcome, kept items, errors."""
    rows: dict[str, list[tuple[str, str, str]]] = {name: [] for name in report.repositories}
    for entry in report.plan_entries:
        ref = short_tag(entry["ref"]) if entry["kind"] == "tag" else short_digest(entry["ref"])
        status = _STATUS_TEXT.get(entry["status"], entry["status"])
        rows.setdefault(entry["repository"], []).append(
            (status, f"{entry['kind']} {ref}", entry["reason"])
        )
    for kept in report.kept:
        item = (
            f"tag {short_tag(kept['tag'])}"
            if "tag" in kept
            else f"manifest {short_digest(kept['digest'])}"
        )
        rows.setdefault(kept["repository"], []).append(("kept", item, kept["reason"]))
    for error in report.errors:
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


def acr_purge_lines(report: Report) -> str:
    """`Would delete: ...` / `Deleted ...` and the `Number of ...` lines, as acr purge prints."""
    lines: list[str] = []
    for dry in (True, False):
        tags = [t for t in report.deleted_tags if t["dryRun"] is dry]
        manifests = [m for m in report.deleted_manifests if m["dryRun"] is dry]
        tag_count = report.done.get(("tag", dry), 0)
        manifest_count = report.done.get(("manifest", dry), 0)
        if dry and not (tag_count or manifest_count) and not report.dry_run:
            continue
        if not dry and report.dry_run and not (tag_count or manifest_count):
            continue
        prefix = "Would delete: " if dry else "Deleted "
        lines += [f"{prefix}{report.registry}/{t['repository']}:{t['tag']}" for t in tags]
        lines += [f"{prefix}{report.registry}/{m['repository']}@{m['digest']}" for m in manifests]
        if report.unlisted:
            lines.append(f"(the report lists the first {len(report.entries)} planned deletions)")
        if dry:
            lines.append(f"Number of tags to be deleted: {tag_count}")
            lines.append(f"Number of manifests to be deleted: {manifest_count}")
        else:
            lines.append(f"Number of deleted tags: {tag_count}")
            lines.append(f"Number of deleted manifests: {manifest_count}")
    return "\n".join(lines)
