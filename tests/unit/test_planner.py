"""Planner: rule flags alone and combined, acr purge examples, blast radius, request economy."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import regex

from purge.config import rules
from purge.config.rules import MaxDeletions, Rule, TagFilter, format_duration
from purge.model import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Keep,
    Manifest,
    ManifestBody,
    Plan,
    RepositorySnapshot,
    Tag,
)
from purge.planner import RepositoryPlanner, check_blast_radius, plan_repository

UTC = timezone.utc  # datetime.UTC needs Python 3.11; 3.10 is supported
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"


def bodies_needed(snapshot: RepositorySnapshot, rule: Rule, now: datetime) -> frozenset[str]:
    """What the service asks a repository's planner before it plans."""
    return RepositoryPlanner(snapshot, rule, now).bodies_needed()


def dg(seed: object) -> str:
    return "sha256:" + hashlib.sha256(str(seed).encode()).hexdigest()


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def make_rule(*filters: str, name: str = "r", **kw: Any) -> Rule:
    parsed = []
    for text in filters:
        repo, _, tag = text.partition(":")
        parsed.append(TagFilter(text, regex.compile(repo), regex.compile(tag)))
    protect = tuple(regex.compile(p) for p in kw.pop("protect", ()))
    return Rule(name=name, filters=tuple(parsed), protect=protect, **kw)


def tag(name: str, digest: str, days: float | None, **kw: Any) -> Tag:
    return Tag(name, digest, None if days is None else ago(days), **kw)


def image(digest: str, days: float | None, *tags: str, **kw: Any) -> Manifest:
    kw.setdefault("media_type", DOCKER_MANIFEST)
    return Manifest(digest, last_updated=None if days is None else ago(days), tags=tags, **kw)


def snap(
    name: str, tags: list[Tag], manifests: list[Manifest], **bodies: Any
) -> RepositorySnapshot:
    return RepositorySnapshot(name, tuple(tags), tuple(manifests), dict(bodies))


def tagged_repo(name: str = "hello-world", specs: Mapping[str, float | None] | None = None) -> Any:
    """One Docker image per tag: {tag: age in days}."""
    specs = specs if specs is not None else {"old": 10, "older": 20, "new": 0.5}
    tags = [tag(t, dg(t), age) for t, age in specs.items()]
    manifests = [image(dg(t), age, t) for t, age in specs.items()]
    return snap(name, tags, manifests)


def deleted_tags(plan: Plan) -> list[str]:
    return [d.tag for d in plan.tag_deletions]


def deleted_manifests(plan: Plan) -> set[str]:
    return {d.digest for d in plan.manifest_deletions}


def kept(plan: Plan) -> dict[str, str]:
    return {k.ref: k.reason for k in plan.kept}


# -- acr purge examples ----------------------------------------------------------------------


def test_filter_hello_world_all_tags_ago_1d() -> None:
    plan = plan_repository(tagged_repo(), make_rule("hello-world:.*", ago=timedelta(days=1)), NOW)
    assert deleted_tags(plan) == ["old", "older"]  # newest first
    assert plan.tag_deletions[0].reason == "older than 1d (updated 2024-05-22T12:00:00+00:00)"
    assert plan.tag_deletions[0].digest == dg("old")
    assert kept(plan) == {"new": "newer than 1d (updated 2024-06-01T00:00:00+00:00)"}
    assert plan.manifest_deletions == ()  # no --untagged: manifests stay, only untagged
    assert plan.listed == 6
    assert plan.errors == ()


def test_repository_outside_filter_gets_an_empty_plan() -> None:
    plan = plan_repository(tagged_repo("other"), make_rule("hello-world:.*"), NOW)
    assert plan == Plan("other", "r", listed=6)


def test_repository_regex_must_match_the_whole_name() -> None:
    plan = plan_repository(tagged_repo("hello-world-2"), make_rule("hello-world:.*"), NOW)
    assert plan.deletion_count == 0


def test_tag_regex_anchored_at_start() -> None:
    specs = {"v1": 5, "v1.2": 5, "v10": 5, "release-v1": 5, "latest": 5}
    plan = plan_repository(tagged_repo("app", specs), make_rule(".*:^v1"), NOW)
    assert sorted(deleted_tags(plan)) == ["v1", "v1.2", "v10"]
    assert plan.kept == ()  # tags outside the filter are not candidates, so not reported


def test_tag_regex_is_an_unanchored_search() -> None:
    specs = {"v1": 5, "release-v1": 5, "latest": 5}
    plan = plan_repository(tagged_repo("app", specs), make_rule("app:v1"), NOW)
    assert sorted(deleted_tags(plan)) == ["release-v1", "v1"]


def test_several_filters_are_ored() -> None:
    specs = {"dev-1": 5, "pr-7": 5, "v1": 5}
    plan = plan_repository(tagged_repo("app", specs), make_rule("app:^dev", "a.p:^pr"), NOW)
    assert sorted(deleted_tags(plan)) == ["dev-1", "pr-7"]


def test_filter_for_another_repository_does_not_apply_its_tag_part() -> None:
    specs = {"dev-1": 5, "pr-7": 5}
    plan = plan_repository(tagged_repo("app", specs), make_rule("app:^dev", "other:.*"), NOW)
    assert deleted_tags(plan) == ["dev-1"]


def test_keep_3_keeps_the_three_newest_of_the_deletable() -> None:
    specs = {f"b{i}": float(i) for i in range(1, 8)}  # b1 is 1 day old ... b7
    specs["fresh"] = 0.1
    plan = plan_repository(tagged_repo("app", specs), make_rule("app:.*", keep=3), NOW)
    assert deleted_tags(plan) == ["b5", "b6", "b7"]
    assert kept(plan) == {
        "fresh": "newer than 1d (updated 2024-06-01T09:36:00+00:00)",
        "b1": "newer than 1d (updated 2024-05-31T12:00:00+00:00)",  # exactly at cutoff: strict
        "b2": "kept by --keep 3",
        "b3": "kept by --keep 3",
        "b4": "kept by --keep 3",
    }


def test_keep_larger_than_candidates_deletes_nothing() -> None:
    plan = plan_repository(tagged_repo(), make_rule("hello-world:.*", keep=10), NOW)
    assert plan.deletion_count == 0
    assert kept(plan)["old"] == "kept by --keep 10"


def test_keep_ties_broken_by_name() -> None:
    specs = {"b": 5, "a": 5, "c": 5}
    plan = plan_repository(tagged_repo("app", specs), make_rule("app:.*", keep=1), NOW)
    assert kept(plan) == {"a": "kept by --keep 1"}
    assert deleted_tags(plan) == ["b", "c"]


def test_ago_zero_deletes_everything_older_than_now() -> None:
    specs = {"a": 0.001, "b": 0}
    plan = plan_repository(tagged_repo("app", specs), make_rule("app:.*", ago=timedelta(0)), NOW)
    assert deleted_tags(plan) == ["a"]
    assert kept(plan) == {"b": "newer than 0d (updated 2024-06-01T12:00:00+00:00)"}


def test_missing_last_update_time_keeps() -> None:
    repo = snap(
        "app",
        [tag("t", dg("t"), None)],
        [image(dg("t"), 30), image(dg("u"), None)],
    )
    plan = plan_repository(repo, make_rule("app:.*", untagged=True), NOW)
    assert plan.deletion_count == 0
    assert kept(plan) == {"t": "no lastUpdateTime", dg("u"): "no lastUpdateTime"}


def test_protect_wins_over_filter_and_keep() -> None:
    specs = {"v1.0": 30, "v1.1": 20, "dev": 10, "stable": 40}
    rule = make_rule("app:.*", protect=("^v1\\.", "^stable$"))
    plan = plan_repository(tagged_repo("app", specs), rule, NOW)
    assert deleted_tags(plan) == ["dev"]
    assert kept(plan) == {
        "v1.1": "protected by ^v1\\.",
        "v1.0": "protected by ^v1\\.",
        "stable": "protected by ^stable$",
    }


def test_protected_tags_do_not_use_a_keep_slot() -> None:
    specs = {"v1": 2, "dev-1": 3, "dev-2": 4}
    rule = make_rule("app:.*", keep=1, protect=("^v",))
    plan = plan_repository(tagged_repo("app", specs), rule, NOW)
    assert kept(plan) == {"v1": "protected by ^v", "dev-1": "kept by --keep 1"}
    assert deleted_tags(plan) == ["dev-2"]


# -- locks -----------------------------------------------------------------------------------


def locked_repo() -> RepositorySnapshot:
    return snap(
        "app",
        [tag("locked", dg(1), 10, write_enabled=False), tag("open", dg(2), 10)],
        [image(dg(1), 10, "locked"), image(dg(2), 10, "open")],
    )


def test_locked_tag_is_kept_without_include_locked() -> None:
    plan = plan_repository(locked_repo(), make_rule("app:.*", untagged=True), NOW)
    assert kept(plan) == {"locked": "locked"}
    assert deleted_tags(plan) == ["open"]
    assert deleted_manifests(plan) == {dg(2)}


def test_include_locked_unlocks_then_deletes() -> None:
    rule = make_rule("app:.*", untagged=True, include_locked=True)
    plan = plan_repository(locked_repo(), rule, NOW)
    by_tag = {d.tag: d for d in plan.tag_deletions}
    assert by_tag["locked"].unlock is True
    # Unlocked by the executor before its manifest's delete, which removes it: one request.
    assert by_tag["locked"].removed_with == dg(1)
    assert by_tag["open"].unlock is False
    assert by_tag["open"].removed_with == dg(2)  # one request: deleting the manifest
    assert deleted_manifests(plan) == {dg(1), dg(2)}


def test_locked_tag_does_not_count_toward_keep() -> None:
    repo = snap(
        "app",
        [tag("l", dg(1), 2, delete_enabled=False), tag("a", dg(2), 3), tag("b", dg(3), 4)],
        [image(dg(i), 2 + i, t) for i, t in ((1, "l"), (2, "a"), (3, "b"))],
    )
    plan = plan_repository(repo, make_rule("app:.*", keep=1), NOW)
    assert kept(plan) == {"l": "locked", "a": "kept by --keep 1"}
    assert deleted_tags(plan) == ["b"]


def test_locked_untagged_manifest() -> None:
    repo = snap("app", [], [image(dg(1), 10, delete_enabled=False)])
    plan = plan_repository(repo, make_rule("app:.*", untagged=True), NOW)
    assert kept(plan) == {dg(1): "locked"}
    plan = plan_repository(repo, make_rule("app:.*", untagged=True, include_locked=True), NOW)
    assert [(d.digest, d.unlock) for d in plan.manifest_deletions] == [(dg(1), True)]


# -- untagged / untagged-only ----------------------------------------------------------------


def untagged_repo() -> RepositorySnapshot:
    return snap(
        "app",
        [tag("v1", dg(1), 10), tag("v2", dg(2), 10), tag("shared", dg(2), 0.1)],
        [
            image(dg(1), 10, "v1"),
            image(dg(2), 10, "v2", "shared"),
            image(dg(3), 10),
            image(dg(4), 0.2),
        ],
    )


def test_untagged_deletes_tags_then_untagged_manifests() -> None:
    plan = plan_repository(untagged_repo(), make_rule("app:.*", untagged=True), NOW)
    assert sorted(deleted_tags(plan)) == ["v1", "v2"]
    by_tag = {d.tag: d for d in plan.tag_deletions}
    assert by_tag["v1"].removed_with == dg(1)
    assert by_tag["v2"].removed_with is None  # "shared" stays: deleting v2 only untags
    assert deleted_manifests(plan) == {dg(1), dg(3)}
    reasons = {d.digest: d.reason for d in plan.manifest_deletions}
    assert reasons[dg(1)] == "tags deleted (v1), older than 1d (updated 2024-05-22T12:00:00+00:00)"
    assert reasons[dg(3)] == "untagged, older than 1d (updated 2024-05-22T12:00:00+00:00)"
    assert {d.digest: d.tags for d in plan.manifest_deletions}[dg(1)] == ("v1",)
    assert kept(plan)[dg(4)].startswith("newer than 1d")
    assert dg(2) not in kept(plan)  # tagged: not something the rule could delete


def test_untagged_keep_counts_tags_only() -> None:
    """acr-cli #644: --keep must not apply a second time to untagged manifests."""
    repo = snap("app", [], [image(dg(i), 10 + i) for i in range(3)])
    plan = plan_repository(repo, make_rule("app:.*", untagged=True, keep=2), NOW)
    assert deleted_manifests(plan) == {dg(0), dg(1), dg(2)}


def test_untagged_only_deletes_no_tags() -> None:
    plan = plan_repository(untagged_repo(), make_rule("app:.*", untagged_only=True), NOW)
    assert plan.tag_deletions == ()
    assert deleted_manifests(plan) == {dg(3)}
    assert set(kept(plan)) == {dg(4)}  # tags are not candidates with --untagged-only


def test_untagged_only_without_filter_covers_every_repository() -> None:
    plan = plan_repository(untagged_repo(), make_rule(untagged_only=True), NOW)
    assert deleted_manifests(plan) == {dg(3)}


def test_untagged_only_filter_selects_repositories_by_name() -> None:
    rule = make_rule("other:.*", untagged_only=True)
    assert plan_repository(untagged_repo(), rule, NOW).deletion_count == 0
    rule = make_rule("a.p:^nothing-matches$", untagged_only=True)
    assert deleted_manifests(plan_repository(untagged_repo(), rule, NOW)) == {dg(3)}


def test_without_untagged_no_manifest_is_deleted_and_none_reported() -> None:
    plan = plan_repository(untagged_repo(), make_rule("app:.*"), NOW)
    assert plan.manifest_deletions == ()
    assert all(k.kind == "tag" for k in plan.kept)


def test_unknown_media_type_is_kept() -> None:
    repo = snap("app", [], [image(dg(1), 10, media_type="application/x-weird")])
    repo = replace(repo, bodies={dg(1): ManifestBody(dg(1), "application/x-weird")})
    plan = plan_repository(repo, make_rule("app:.*", untagged=True), NOW)
    assert kept(plan) == {dg(1): "unknown media type 'application/x-weird'"}


def test_manifest_tags_listing_also_protects() -> None:
    """A tag only the manifest listing shows (not the tag listing) still keeps it: fail closed."""
    repo = snap("app", [tag("v1", dg(1), 10)], [image(dg(1), 10, "v1"), image(dg(2), 10, "v1")])
    plan = plan_repository(repo, make_rule("app:^x", untagged=True), NOW)
    assert plan.manifest_deletions == ()
    plan = plan_repository(repo, make_rule("app:.*", untagged=True), NOW)
    assert deleted_manifests(plan) == {dg(1), dg(2)}
    assert plan.tag_deletions[0].removed_with is None  # listings disagree: its own request


# -- regex timeouts --------------------------------------------------------------------------


def test_tag_filter_timeout_keeps_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "MATCH_TIMEOUT_SECONDS", 0.02)
    specs = {"a" * 30 + "b": 10, "ok": 10}
    plan = plan_repository(tagged_repo("app", specs), make_rule("app:^(a|aa)+$|ok"), NOW)
    assert deleted_tags(plan) == ["ok"]
    reason = kept(plan)["a" * 30 + "b"]
    assert reason.startswith("kept: regex") and "timed out" in reason
    assert len(plan.errors) == 1 and "timed out" in plan.errors[0]


def test_repository_filter_timeout_plans_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "MATCH_TIMEOUT_SECONDS", 0.02)
    repo = tagged_repo("a" * 30 + "b")
    plan = plan_repository(repo, make_rule("^(a|aa)+$:.*", untagged=True), NOW)
    assert plan.deletion_count == 0
    assert "nothing planned" in plan.errors[0]


# -- bad input -------------------------------------------------------------------------------


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_repository(tagged_repo(), make_rule("hello-world:.*"), datetime(2024, 1, 1))


def test_negative_keep_is_rejected() -> None:
    with pytest.raises(ValueError, match="keep must be 0 or more"):
        plan_repository(tagged_repo(), make_rule("hello-world:.*", keep=-1), NOW)


# -- determinism -----------------------------------------------------------------------------


def test_listing_order_does_not_change_the_plan() -> None:
    repo = untagged_repo()
    rule = make_rule("app:.*", untagged=True)
    reversed_repo = replace(repo, tags=repo.tags[::-1], manifests=repo.manifests[::-1])
    assert plan_repository(repo, rule, NOW) == plan_repository(reversed_repo, rule, NOW)


def test_duplicate_listing_entries_are_planned_once() -> None:
    repo = tagged_repo("app", {"a": 5})
    doubled = replace(repo, tags=repo.tags * 2, manifests=repo.manifests * 2)
    plan = plan_repository(doubled, make_rule("app:.*", untagged=True), NOW)
    assert deleted_tags(plan) == ["a"]
    assert deleted_manifests(plan) == {dg("a")}


# -- blast radius ----------------------------------------------------------------------------


def plans_with(deletions: int, listed: int, rule: str = "nightly") -> list[Plan]:
    tag_plan = plan_repository(
        tagged_repo("app", {f"t{i}": 5 for i in range(deletions)}),
        make_rule("app:.*", name=rule),
        NOW,
    )
    return [replace(tag_plan, listed=listed)]


def test_blast_radius_count() -> None:
    rule = make_rule(name="nightly", max_deletions=MaxDeletions(count=3))
    assert check_blast_radius(plans_with(3, 100), rule) is None
    assert check_blast_radius(plans_with(4, 100), rule) == (
        "rule 'nightly' would delete 4 items, more than --max-deletions 3: "
        "nothing deleted for this rule"
    )


def test_blast_radius_counts_removed_with_deletions() -> None:
    repo = tagged_repo("app", {"a": 5, "b": 5})
    rule = make_rule("app:.*", name="n", untagged=True, max_deletions=MaxDeletions(count=3))
    plan = plan_repository(repo, rule, NOW)
    assert plan.deletion_count == 4  # two tags (removed with their manifests) + two manifests
    assert check_blast_radius([plan], rule) is not None


def test_blast_radius_percent() -> None:
    rule = make_rule(name="nightly", max_deletions=MaxDeletions(percent=50))
    assert check_blast_radius(plans_with(5, 10), rule) is None
    reason = check_blast_radius(plans_with(6, 10), rule)
    assert reason == (
        "rule 'nightly' would delete 6 of 10 listed items (60%), more than --max-deletions 50%: "
        "nothing deleted for this rule"
    )


def test_blast_radius_sums_over_plans() -> None:
    rule = make_rule(name="nightly", max_deletions=MaxDeletions(count=5))
    assert check_blast_radius(plans_with(3, 10) + plans_with(3, 10), rule) is not None


def test_blast_radius_unlimited_and_empty() -> None:
    assert check_blast_radius(plans_with(50, 50), make_rule(name="nightly")) is None
    guarded = make_rule(name="nightly", max_deletions=MaxDeletions(percent=0))
    assert check_blast_radius([], guarded) is None
    assert check_blast_radius(plans_with(1, 10), guarded) is not None


def test_blast_radius_rejects_plans_of_another_rule() -> None:
    with pytest.raises(ValueError, match="other rules"):
        check_blast_radius(plans_with(1, 1, rule="x"), make_rule(name="nightly"))


# -- request economy -------------------------------------------------------------------------


def test_bodies_needed_is_empty_without_manifest_deletions() -> None:
    repo = snap("app", [], [image(dg(1), 10, media_type=OCI_INDEX)])
    assert bodies_needed(repo, make_rule("app:.*"), NOW) == frozenset()


def test_bodies_needed_is_empty_without_candidates() -> None:
    repo = snap(
        "app",
        [tag("v1", dg(1), 0.1)],
        [image(dg(1), 10, "v1", media_type=OCI_INDEX), image(dg(2), 0.5, media_type=OCI_MANIFEST)],
    )
    assert bodies_needed(repo, make_rule("app:.*", untagged=True), NOW) == frozenset()


def test_bodies_needed_asks_only_what_decisions_need() -> None:
    manifests = [
        image(dg("docker"), 10),  # Docker v2: never fetched
        image(dg("oci-image"), 10, media_type=OCI_MANIFEST, config_media_type=IMAGE_CONFIG),
        image(dg("oci-art"), 10, media_type=OCI_MANIFEST, config_media_type="application/x-sig"),
        image(dg("oci-noconf"), 10, media_type=OCI_MANIFEST),
        image(dg("idx"), 10, "v1", media_type=OCI_INDEX),
        image(
            dg("list"), 10, media_type="application/vnd.docker.distribution.manifest.list.v2+json"
        ),
        image(
            dg("list-refs"),
            10,
            media_type="application/vnd.docker.distribution.manifest.list.v2+json",
            references=(dg("docker"),),
        ),
        image(dg("weird"), 10, media_type=None),
    ]
    tags = [tag("v1", dg("idx"), 0.1), tag("race", dg("unlisted"), 0.1)]
    repo = snap("app", tags, manifests)
    assert bodies_needed(repo, make_rule("app:.*", untagged=True), NOW) == {
        dg("oci-image"),  # an image config says nothing about a `subject`: read it
        dg("oci-art"),
        dg("oci-noconf"),
        dg("idx"),
        dg("list"),
        dg("weird"),
        dg("unlisted"),
    }
    fetched = replace(
        repo, bodies={dg("idx"): ManifestBody(dg("idx"), OCI_INDEX), dg("list"): None}
    )
    assert bodies_needed(fetched, make_rule("app:.*", untagged=True), NOW) == {
        dg("oci-image"),
        dg("oci-art"),
        dg("oci-noconf"),
        dg("weird"),
        dg("unlisted"),
    }


def test_bodies_needed_skips_targets_of_deleted_tags() -> None:
    repo = snap("app", [tag("gone", dg("unlisted"), 10)], [image(dg(1), 10)])
    assert bodies_needed(repo, make_rule("app:.*", untagged=True), NOW) == frozenset()


# -- wording ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=30), "30d"),
        (timedelta(days=1, hours=3, minutes=6), "1d3h6m"),
        (timedelta(minutes=15), "15m"),
        (timedelta(0), "0d"),
        (timedelta(seconds=30), "30s"),
        (timedelta(days=2, seconds=1.5), "2d1.5s"),
        (timedelta(hours=-1), "-1h"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


def test_keep_objects_carry_digest() -> None:
    plan = plan_repository(tagged_repo(), make_rule("hello-world:.*"), NOW)
    assert plan.kept == (Keep("tag", "new", dg("new"), plan.kept[0].reason),)


def test_bodies_then_plan_on_the_same_listing_reuses_nothing_stale() -> None:
    """The service's flow: bodies_needed, fetch, plan on the same tuples with bodies added."""
    art = dg("art")
    repo = snap(
        "app",
        [tag("v1", dg(1), 10)],
        [image(dg(1), 10, "v1"), image(art, 10, media_type=OCI_MANIFEST)],
    )
    rule = make_rule("app:.*", untagged=True)
    assert bodies_needed(repo, rule, NOW) == {art}
    failed = replace(repo, bodies={art: None})
    first = plan_repository(failed, rule, NOW)
    assert first.manifest_deletions == () and len(first.errors) == 2
    assert plan_repository(failed, rule, NOW) == first  # errors do not pile up
    fetched = replace(repo, bodies={art: ManifestBody(art, OCI_MANIFEST)})
    assert deleted_manifests(plan_repository(fetched, rule, NOW)) == {dg(1), art}
    fresh = snap("app", list(repo.tags), list(repo.manifests), **{})
    fresh = replace(fresh, bodies=fetched.bodies)
    assert plan_repository(fresh, rule, NOW) == plan_repository(fetched, rule, NOW)
