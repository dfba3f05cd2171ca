"""Property tests: random repositories (graphs, locks, tags, times) against the safety rules."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from purge.config.rules import Rule, TagFilter
from purge.model import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_MEDIA_TYPES,
    KNOWN_MEDIA_TYPES,
    OCI_ARTIFACT,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    ManifestBody,
    Plan,
    RepositorySnapshot,
    Tag,
)
from purge.planner import RepositoryPlanner, plan_repository

UTC = timezone.utc  # datetime.UTC needs Python 3.11; 3.10 is supported
NOW = datetime(2024, 6, 1, tzinfo=UTC)
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
SIG_CONFIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
AGES = [None, 0.0, 0.2, 1.0, 2.0, 10.0, 40.0]
KINDS = ["docker", "oci-image", "oci-sig", "oci-noconf", "artifact", "index", "list", "weird"]
TAG_NAMES = ["v1", "v1.1", "v2", "latest", "dev-1", "dev-2", "release", "pr-3", "stable"]

PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def dg(seed: object) -> str:
    return "sha256:" + hashlib.sha256(str(seed).encode()).hexdigest()


def when(age: float | None) -> datetime | None:
    return None if age is None else NOW - timedelta(days=age)


@dataclass(frozen=True)
class Case:
    snapshot: RepositorySnapshot
    rule: Rule
    #: Every body as the registry holds it (consistent with the listing), present or not.
    truth: dict[str, ManifestBody]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    count = draw(st.integers(1, 10))
    manifests: list[Manifest] = []
    truth: dict[str, ManifestBody] = {}
    bodies: dict[str, ManifestBody | None] = {}
    digests = [dg(("m", i, draw(st.integers(0, 3)))) for i in range(count)]
    ghost = dg("ghost")
    for i, digest in enumerate(digests):
        kind = draw(st.sampled_from(KINDS))
        earlier = digests[:i]
        children: tuple[str, ...] = ()
        subject = None
        media_type: str | None = {
            "docker": DOCKER_MANIFEST,
            "oci-image": OCI_MANIFEST,
            "oci-sig": OCI_MANIFEST,
            "oci-noconf": OCI_MANIFEST,
            "artifact": OCI_ARTIFACT,
            "index": OCI_INDEX,
            "list": DOCKER_MANIFEST_LIST,
            "weird": draw(st.sampled_from([None, "application/x-unknown"])),
        }[kind]
        config = {"oci-image": IMAGE_CONFIG, "oci-sig": SIG_CONFIG}.get(kind)
        if kind in ("index", "list", "weird") and earlier:
            children = tuple(draw(st.lists(st.sampled_from(earlier), max_size=3, unique=True)))
        if kind in ("oci-sig", "oci-noconf", "artifact", "index") and draw(st.booleans()):
            subject = draw(st.sampled_from([*earlier, ghost]))
        references = children if kind in ("index", "list") and draw(st.booleans()) else None
        truth[digest] = ManifestBody(digest, media_type, children=children, subject=subject)
        fetched = draw(st.sampled_from(["yes", "yes", "failed", "absent"]))
        if fetched == "yes":
            bodies[digest] = truth[digest]
        elif fetched == "failed":
            bodies[digest] = None
        manifests.append(
            Manifest(
                digest,
                media_type,
                when(draw(st.sampled_from(AGES))),
                references=references,
                config_media_type=config,
                delete_enabled=draw(st.booleans()) or draw(st.booleans()),
                write_enabled=draw(st.booleans()) or draw(st.booleans()),
            )
        )
    unlisted = dg("pushed-during-listing")
    targets = [*digests, unlisted] if draw(st.booleans()) else digests
    names = list(TAG_NAMES)
    names += [f"sha256-{d.split(':')[1]}.{s}" for d in digests[:3] for s in ("sig", "att")]
    chosen = draw(st.lists(st.sampled_from(names), max_size=8, unique=True))
    tags = [
        Tag(
            name,
            draw(st.sampled_from(targets)),
            when(draw(st.sampled_from(AGES))),
            delete_enabled=draw(st.booleans()) or draw(st.booleans()),
            write_enabled=draw(st.booleans()) or draw(st.booleans()),
        )
        for name in chosen
    ]
    by_digest = {m.digest: m for m in manifests}
    for t in tags:  # the manifest listing shows the tags too (mostly)
        if t.digest in by_digest and draw(st.booleans()):
            m = by_digest[t.digest]
            by_digest[t.digest] = replace(m, tags=(*m.tags, t.name))
    tag_regex = draw(st.sampled_from([".*", "^v", "dev", "^latest$", "sig$", "^sha256-"]))
    rule = Rule(
        name="prop",
        filters=(TagFilter(f"app:{tag_regex}", regex.compile("app"), regex.compile(tag_regex)),),
        ago=timedelta(days=draw(st.sampled_from([0, 1, 7]))),
        keep=draw(st.integers(0, 3)),
        untagged=draw(st.booleans()),
        untagged_only=draw(st.booleans()) and draw(st.booleans()),
        include_locked=draw(st.booleans()),
        protect=tuple(regex.compile(p) for p in draw(st.sampled_from([[], ["^release$", "^v1"]]))),
    )
    snapshot = RepositorySnapshot("app", tuple(tags), tuple(by_digest.values()), bodies)
    return Case(snapshot, rule, truth)


def deleted_digests(plan: Plan) -> set[str]:
    return {d.digest for d in plan.manifest_deletions}


def deleted_tag_names(plan: Plan) -> set[str]:
    return {d.tag for d in plan.tag_deletions}


def old_enough(moment: datetime | None, rule: Rule) -> bool:
    return moment is not None and moment < NOW - rule.ago


@given(cases())
@PROFILE
def test_nothing_outside_the_filter_or_protected_or_locked_is_deleted(case: Case) -> None:
    plan = plan_repository(case.snapshot, case.rule, NOW)
    rule = case.rule
    tags = {t.name: t for t in case.snapshot.tags}
    if rule.untagged_only:
        assert plan.tag_deletions == ()
    for d in plan.tag_deletions:
        t = tags[d.tag]
        assert rule.filters[0].tag.search(d.tag), "deleted a tag outside the filter"
        assert not any(p.search(d.tag) for p in rule.protect), "deleted a protected tag"
        assert rule.include_locked or not t.locked, "deleted a locked tag"
        assert d.unlock == t.locked
        assert d.reason
    for md in plan.manifest_deletions:
        m = next(m for m in case.snapshot.manifests if m.digest == md.digest)
        assert rule.include_locked or not m.locked, "deleted a locked manifest"
        assert md.unlock == m.locked
        assert rule.untagged or rule.untagged_only
        assert old_enough(m.last_updated, rule)
        assert m.media_type in KNOWN_MEDIA_TYPES
        assert md.reason


@given(cases())
@PROFILE
def test_graph_stays_whole(case: Case) -> None:
    """No kept manifest points at a deleted one, and no surviving tag does either."""
    plan = plan_repository(case.snapshot, case.rule, NOW)
    gone = deleted_digests(plan)
    gone_tags = deleted_tag_names(plan)
    for m in case.snapshot.manifests:
        body = case.truth[m.digest]
        edges = set(m.references or ()) | set(body.children)
        if body.subject:
            edges.add(body.subject)
        if m.digest in gone:
            # A referrer goes only with its subject (kept subjects keep their referrers).
            assert body.subject is None or body.subject in gone, "referrer of a kept subject"
            continue
        assert not edges & gone, f"kept {m.digest} points at a deleted manifest"
    for t in case.snapshot.tags:
        if t.name not in gone_tags:
            assert t.digest not in gone, "a surviving tag points at a deleted manifest"
    for m in case.snapshot.manifests:
        if m.digest in gone:
            assert all(name in gone_tags for name in m.tags)
    for d in plan.manifest_deletions:
        assert d.removed_with is None or d.removed_with in gone
    for td in plan.tag_deletions:
        assert td.removed_with is None or td.removed_with in gone


@given(cases())
@PROFILE
def test_unreadable_or_unknown_kept_manifest_stops_manifest_deletions(case: Case) -> None:
    plan = plan_repository(case.snapshot, case.rule, NOW)
    gone = deleted_digests(plan)
    if not gone:
        return
    for m in case.snapshot.manifests:
        if m.digest in gone:
            # any OCI manifest may carry a subject, whatever its config media type
            possible_referrer = m.media_type in (OCI_ARTIFACT, OCI_INDEX, OCI_MANIFEST)
            if possible_referrer:
                assert case.snapshot.bodies.get(m.digest) is not None, "deleted an unknown referrer"
            continue
        body = case.snapshot.bodies.get(m.digest)
        if body is None:
            unknown_children = m.media_type in INDEX_MEDIA_TYPES and m.references is None
            assert not unknown_children, "deleted while a kept index has unknown children"
            assert m.media_type in KNOWN_MEDIA_TYPES, "deleted beside an unreadable unknown type"
    for t in case.snapshot.tags:
        listed = {m.digest for m in case.snapshot.manifests}
        if t.name not in deleted_tag_names(plan) and t.digest not in listed:
            assert case.snapshot.bodies.get(t.digest) is not None


@given(cases())
@PROFILE
def test_keep_n_leaves_at_least_n_eligible_tags(case: Case) -> None:
    rule = case.rule
    if rule.untagged_only:
        return
    plan = plan_repository(case.snapshot, rule, NOW)
    gone = deleted_tag_names(plan)
    eligible = [
        t
        for t in case.snapshot.tags
        if rule.filters[0].tag.search(t.name)
        and not any(p.search(t.name) for p in rule.protect)
        and old_enough(t.last_updated, rule)
        and (rule.include_locked or not t.locked)
    ]
    plain = [t for t in eligible if not t.name.startswith("sha256-")]
    surviving = [t for t in eligible if t.name not in gone]
    assert len(surviving) >= min(rule.keep, len(plain))
    # --keep keeps the newest: no deleted plain tag is newer than one kept by --keep.
    by_keep = [t for t in plain if t.name in {k.ref for k in plan.kept if "--keep" in k.reason}]
    assert len(by_keep) <= rule.keep
    for t in plain:
        if t.name in gone:
            assert all(t.last_updated <= k.last_updated for k in by_keep)  # type: ignore[operator]


@given(cases(), st.randoms(use_true_random=False))
@PROFILE
def test_plan_is_pure_and_independent_of_listing_order(case: Case, rnd: random.Random) -> None:
    first = plan_repository(case.snapshot, case.rule, NOW)
    assert plan_repository(case.snapshot, case.rule, NOW) == first
    tags, manifests = list(case.snapshot.tags), list(case.snapshot.manifests)
    rnd.shuffle(tags)
    rnd.shuffle(manifests)
    shuffled = replace(case.snapshot, tags=tuple(tags), manifests=tuple(manifests))
    assert plan_repository(shuffled, case.rule, NOW) == first
    assert first.listed == len(tags) + len(manifests)


@given(cases())
@PROFILE
def test_bodies_needed_is_enough(case: Case) -> None:
    """Fetching only what bodies_needed asks for plans exactly as fetching everything does."""
    bare = replace(case.snapshot, bodies={})
    needed = RepositoryPlanner(bare, case.rule, NOW).bodies_needed()
    everything = replace(case.snapshot, bodies=dict(case.truth))
    # where the planner reads the referrers API instead of every body, it gets the true answer
    listed = {m.digest for m in case.snapshot.manifests}
    referrers = {
        subject: tuple(
            sorted(d for d, b in case.truth.items() if b and b.subject == subject and d in listed)
        )
        for subject in RepositoryPlanner(bare, case.rule, NOW).referrers_needed()
    }
    only_needed = replace(
        case.snapshot,
        bodies={d: case.truth[d] for d in needed if d in case.truth},
        referrers=referrers,
    )
    assert plan_repository(only_needed, case.rule, NOW) == plan_repository(
        everything, case.rule, NOW
    )
    for m in case.snapshot.manifests:
        if m.media_type == DOCKER_MANIFEST:
            assert m.digest not in needed
