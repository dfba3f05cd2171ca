"""The report's JSON shape is a public contract (DESIGN.md section 1); its text is for people."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from purge import report as report_module
from purge.executor import execute
from purge.model import DOCKER_MANIFEST, Keep, Manifest, ManifestDeletion, Plan, Tag, TagDeletion
from purge.render import render_text
from purge.report import Report, human_bytes
from tests.fakes import InMemoryRegistry

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def registry() -> InMemoryRegistry:
    reg = InMemoryRegistry("myreg.azurecr.io")
    for digest, tag in ((A, "v1"), (B, "v2"), (C, "latest")):
        reg.add_manifest("team/app", Manifest(digest, DOCKER_MANIFEST, NOW, size=2048))
        reg.add_tag("team/app", Tag(tag, digest, NOW))
    return reg


PLAN = Plan(
    "team/app",
    "nightly",
    tag_deletions=(
        TagDeletion("v1", A, "older than 30d"),
        TagDeletion("v2", B, "older than 30d", removed_with=B),
    ),
    manifest_deletions=(ManifestDeletion(B, ("v2",), 3 * 1024 * 1024, "untagged, older than 30d"),),
    kept=(
        Keep("tag", "latest", C, "newer than 30d"),
        Keep("manifest", A, A, "still tagged"),
    ),
    listed=6,
)


async def make_report(dry_run: bool) -> Report:
    report = Report("myreg.azurecr.io", dry_run, NOW)
    report.start_rule("nightly", dry_run)
    report.add_result(await execute(PLAN, registry(), dry_run=dry_run))
    report.finish(NOW)
    return report


async def test_json_shape_has_exactly_the_design_field_names() -> None:
    data = json.loads(json.dumps((await make_report(dry_run=False)).to_dict()))
    design = {"registry", "dryRun", "complete", "startedAt", "finishedAt", "deleted", "kept"}
    design |= {"errors", "totals"}
    assert design <= set(data)
    assert set(data["deleted"]) == {"tags", "manifests"}
    assert {"repository", "tag", "digest", "reason"} <= set(data["deleted"]["tags"][0])
    assert {"repository", "digest", "tags", "size", "reason"} <= set(
        data["deleted"]["manifests"][0]
    )
    assert set(data["totals"]) == {"tagsDeleted", "manifestsDeleted", "bytesFreed", "errors"}
    kept_tag, kept_manifest = data["kept"]
    assert kept_tag["tag"] == "latest" and "digest" not in kept_tag
    assert kept_manifest["digest"] == A and "tag" not in kept_manifest
    assert data["totals"] == {
        "tagsDeleted": 2,
        "manifestsDeleted": 1,
        "bytesFreed": 3 * 1024 * 1024,
        "errors": 0,
    }
    assert data["freedBytesIsUpperBound"] is True
    assert data["registry"] == "myreg.azurecr.io" and data["dryRun"] is False
    assert data["startedAt"] == "2024-06-01T00:00:00Z"
    assert data["rules"][0]["name"] == "nightly" and data["rules"][0]["planned"] == 3
    assert data["repositories"]["team/app"]["tagsDeleted"] == 2
    assert {entry["status"] for entry in data["plan"]} == {"deleted"}


async def test_dry_run_lists_what_would_be_deleted_in_acr_purge_wording() -> None:
    report = await make_report(dry_run=True)
    assert report.to_dict()["totals"]["tagsDeleted"] == 2
    text = render_text(report)
    assert "Would delete: myreg.azurecr.io/team/app:v1" in text
    assert f"Would delete: myreg.azurecr.io/team/app@{B}" in text
    assert "Number of tags to be deleted: 2" in text
    assert "Number of manifests to be deleted: 1" in text
    assert "Deleted myreg" not in text
    assert "upper bound" in text and "3.0 MiB" in text
    assert "newer than 30d" in text  # kept items appear with their reason


async def test_real_run_says_deleted() -> None:
    text = render_text(await make_report(dry_run=False))
    assert "Deleted myreg.azurecr.io/team/app:v1" in text
    assert "Number of deleted tags: 2" in text
    assert "Number of deleted manifests: 1" in text
    assert "Would delete" not in text


async def test_failures_and_deadline_show_in_report() -> None:
    reg = registry()
    reg.fail("delete_tag", ref="v1")
    report = Report("myreg.azurecr.io", False, NOW)
    report.start_rule("nightly", False)
    report.add_result(await execute(PLAN, reg, dry_run=False))
    report.add_result(await execute(PLAN, reg, dry_run=False, deadline=0.0))
    data = report.to_dict()
    assert data["complete"] is False
    assert data["errors"][0]["repository"] == "team/app" and data["errors"][0]["ref"] == "v1"
    assert data["totals"]["errors"] == 1
    statuses = [e["status"] for e in data["plan"]]
    assert statuses.count("failed") == 1 and statuses.count("not_started") == 3
    assert "INCOMPLETE" in report.summary_line()
    assert "Run again to continue" in render_text(report)


def test_blocked_rule_is_reported_with_its_reason() -> None:
    report = Report("myreg.azurecr.io", False, NOW)
    report.start_rule("nightly", False)
    report.add_blocked([PLAN], "nightly", "would delete 3 items, more than 2")
    data = report.to_dict()
    assert data["rules"][0]["blocked"] == "would delete 3 items, more than 2"
    assert data["totals"]["tagsDeleted"] == 0 and data["totals"]["errors"] == 1
    assert {e["status"] for e in data["plan"]} == {"blocked"}
    assert "deleted nothing" in render_text(report)


def test_kept_entries_are_capped_but_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_module, "MAX_KEPT_ENTRIES", 1)
    report = Report("myreg.azurecr.io", True, NOW)
    report.add_kept(PLAN)
    data = report.to_dict()
    assert len(data["kept"]) == 1 and data["keptCount"] == 2 and data["keptTruncated"] is True


def test_summary_line_is_one_line_with_counts() -> None:
    report = Report("myreg.azurecr.io", True, NOW)
    line = report.summary_line()
    assert "\n" not in line
    assert "would delete 0 tags and 0 manifests" in line and "complete" in line


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**4) == "5.0 TiB"


async def test_listed_deletions_are_capped_but_totals_stay_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report_module, "MAX_LISTED_DELETIONS", 2)
    data = (await make_report(dry_run=True)).to_dict()
    assert len(data["plan"]) == 2 and data["unlistedDeletions"] == 1
    assert data["deletedTruncated"] is True
    assert data["totals"]["tagsDeleted"] == 2 and data["totals"]["manifestsDeleted"] == 1
    text = render_text(await make_report(dry_run=True))
    assert "Number of tags to be deleted: 2" in text
    assert "Number of manifests to be deleted: 1" in text
    assert "lists the first 2 planned deletions" in text


async def test_a_small_report_is_not_truncated() -> None:
    data = (await make_report(dry_run=False)).to_dict()
    assert data["deletedTruncated"] is False and data["unlistedDeletions"] == 0
