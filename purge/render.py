"""Text and tables for people (rich): loaded by the CLI and the demo only, never by the app.

The JSON report (purge.report) is what machines and the Functions host read. Every string shown
here may come from a registry or a user pattern (`--protect '^t0[/]?$'` once crashed the report
of a real run on rich's markup): markup and emoji codes are off, control characters are escaped.
"""

from __future__ import annotations

import io
from typing import IO, Any

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


#: acr purge's first line in a dry run.
DRY_RUN_BANNER = (
    "DRY RUN: The following output shows what WOULD be deleted if the purge command was "
    "executed. Nothing is deleted."
)


def render_text(report: Report, width: int | None = 120) -> str:
    """The tables, then acr purge's lines and the summary: for a terminal and the demo."""
    return tables_text(report, width) + lines_text(report)


def tables_text(report: Report, width: int | None = 120) -> str:
    """A table per repository (every decision with its reason) and one of errors."""
    out = io.StringIO()
    console = plain_console(out, width)
    for table in _repository_tables(report):
        console.print(table)
    if report.errors:
        table = Table(title="Errors", title_justify="left")
        for column in ("Repository", "Item", "Error"):
            table.add_column(column, overflow="fold")
        for e in report.errors:
            table.add_row(*map(printable, (e["repository"], e["ref"], e["error"])))
        console.print(table)
    return out.getvalue()


def lines_text(report: Report) -> str:
    """acr purge's lines, then this project's own, as plain lines: never wrapped.

    This is what `--output text` prints on stdout, where scripts read it; rich is not involved,
    so a long repository name or a digest stays on its line whatever the terminal's width.
    """
    lines = acr_purge_lines(report).split("\n")
    lines += [
        f"Rule {r.name!r} deleted nothing: {r.blocked}" for r in report.rules.values() if r.blocked
    ]
    lines += [f"Error: {e['repository']} {e['ref']}: {e['error']}" for e in report.errors]
    lines.append(
        f"Estimated space freed: {human_bytes(report.bytes_freed)} (an upper bound: layers "
        "shared with kept images stay)"
    )
    lines += [f"Warning: {warning}" for warning in report.warnings]
    if not report.complete:
        lines.append(f"Incomplete: {report.incomplete_reason}. Run again to continue.")
    lines.append(report.summary_line())
    return "\n".join(map(printable, lines)) + "\n"


def plain_console(file: IO[str], width: int | None = None, *, color: bool = False) -> Console:
    """A Console that shows strings as given: markup, emoji codes and highlighting off (pass
    each string through `printable` too). The report's tables and the terminal's progress."""
    return Console(
        file=file,
        width=width,
        color_system="auto" if color else None,
        highlight=False,
        markup=False,
        emoji=False,
    )


def printable(text: object) -> str:
    """`text` with control characters (terminal escapes, newlines) written as escapes."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in value
    )


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
        table = Table(title=printable(repository), title_justify="left")
        for column in ("Action", "Item", "Reason"):
            table.add_column(column, overflow="fold")
        for row in rows[repository]:
            table.add_row(*map(printable, row))
        tables.append(table)
    return tables


def acr_purge_lines(report: Report) -> str:
    """acr purge's own output, line for line, so that scripts that read it keep working.

    The dry-run banner; per rule, its repositories in name order, each with acr purge's
    section headers (`Would delete tags for repository: X`, `Deleting manifests for
    repository: X`) and a line per deletion with the whole name and digest; a blank line; the
    two counts. A repository's lines keep the plan's order (acr purge's vary between runs).
    """
    lines = [DRY_RUN_BANNER] if report.dry_run else []
    done: dict[tuple[str, str, str], list[str]] = {}

    def add(entry: dict[str, Any], kind: str, ref: str) -> None:
        prefix = "Would delete: " if entry["dryRun"] else "Deleted "
        key = (entry["rule"], entry["repository"], kind)
        done.setdefault(key, []).append(f"{prefix}{report.registry}/{entry['repository']}{ref}")

    for t in report.deleted_tags:
        add(t, "tags", f":{t['tag']}")
    for m in report.deleted_manifests:
        add(m, "manifests", f"@{m['digest']}")
    for rule in report.rules.values():
        verb = "Would delete" if rule.dry_run else "Deleting"
        phases = (("tags", rule.deletes_tags), ("manifests", rule.deletes_manifests))
        listed = {repository for (name, repository, _) in done if name == rule.name}
        for repository in sorted(rule.repository_names | listed):
            for kind, phase in phases:
                if phase or (rule.name, repository, kind) in done:
                    lines.append(f"{verb} {kind} for repository: {repository}")
                    lines += done.get((rule.name, repository, kind), [])
    if report.unlisted:
        lines.append(f"(the report lists the first {len(report.entries)} planned deletions)")
    lines.append("")
    for dry in (True, False):
        tags = report.done.get(("tag", dry), 0)
        manifests = report.done.get(("manifest", dry), 0)
        if dry != report.dry_run and not (tags or manifests):
            continue
        if dry:
            lines.append(f"Number of tags to be deleted: {tags}")
            lines.append(f"Number of manifests to be deleted: {manifests}")
        else:
            lines.append(f"Number of deleted tags: {tags}")
            lines.append(f"Number of deleted manifests: {manifests}")
    return "\n".join(lines)
