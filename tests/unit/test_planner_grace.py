"""The grace period in the planner: a manifest this project untagged waits `grace` before it goes.

The planner is pure: when the project untagged each manifest comes in the snapshot
(`untagged_at`, read from the run history by the service's caller).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import regex

from purge.config.rules import Rule, TagFilter
from purge.model import DOCKER_MANIFEST, OCI_INDEX, Manifest, RepositorySnapshot, Tag
from purge.planner import plan_repository

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
WEEK = timedelta(days=7)


def dg(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def rule(grace: timedelta | None = WEEK) -> Rule:
    text = "app:.*"
    f = TagFilter(text, regex.compile("app"), regex.compile(".*"))
    return Rule(name="r", filters=(f,), ago=timedelta(days=30), untagged=True, grace=grace)


def old(days: float = 40) -> datetime:
    return NOW - timedelta(days=days)


def snapshot(
    untagged_at: dict[str, datetime] | None = None, tagged: bool = True
) -> RepositorySnapshot:
    tags = (Tag("v1", dg("a"), old()),) if tagged else ()
    manifests = (
        Manifest(dg("a"), DOCKER_MANIFEST, old(), tags=("v1",) if tagged else ()),
        Manifest(dg("b"), DOCKER_MANIFEST, old()),
    )
    return RepositorySnapshot("app", tags, manifests, untagged_at=untagged_at or {})


def test_a_manifest_whose_last_tag_goes_now_is_kept_for_the_grace() -> None:
    plan = plan_repository(snapshot(), rule(), NOW)
    assert [t.tag for t in plan.tag_deletions] == ["v1"]
    deleted = {m.digest for m in plan.manifest_deletions}
    assert dg("a") not in deleted  # its tag went in this run: the grace starts now
    assert dg("b") in deleted  # untagged by someone else (no record): no grace
    reasons = {k.ref: k.reason for k in plan.kept}
    assert reasons[dg("a")].startswith("grace: its last tag is deleted in this run")


def test_a_manifest_untagged_within_the_grace_is_kept_and_after_it_deleted() -> None:
    recent = snapshot({dg("b"): NOW - timedelta(days=2)}, tagged=False)
    plan = plan_repository(recent, rule(), NOW)
    assert dg("b") not in {m.digest for m in plan.manifest_deletions}
    assert (
        "grace: untagged by this project at 2026-11-30"
        in {k.ref: k.reason for k in plan.kept}[dg("b")]
    )
    expired = snapshot({dg("b"): NOW - timedelta(days=8)}, tagged=False)
    plan = plan_repository(expired, rule(), NOW)
    assert dg("b") in {m.digest for m in plan.manifest_deletions}


def test_without_grace_the_history_changes_nothing() -> None:
    plan = plan_repository(snapshot({dg("b"): NOW}), rule(grace=None), NOW)
    assert {m.digest for m in plan.manifest_deletions} == {dg("a"), dg("b")}


def test_the_children_of_an_index_in_grace_are_kept_with_it() -> None:
    child = Manifest(dg("c"), DOCKER_MANIFEST, old())
    index = Manifest(dg("i"), OCI_INDEX, old(), references=(dg("c"),))
    snap = RepositorySnapshot(
        "app", (), (index, child), untagged_at={dg("i"): NOW - timedelta(days=1)}
    )
    plan = plan_repository(snap, rule(), NOW)
    assert plan.manifest_deletions == ()
