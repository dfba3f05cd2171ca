"""Whether an OCI manifest has a `subject` is read, by the cheaper of two ways (issue 16, 4)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from purge.model import (
    DOCKER_MANIFEST,
    IMAGE_CONFIG_MEDIA_TYPES,
    OCI_MANIFEST,
    Manifest,
    ManifestBody,
    RepositorySnapshot,
    Tag,
)
from purge.planner import RepositoryPlanner
from tests.unit.test_planner import make_rule

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
OLD, NEW = NOW - timedelta(days=40), NOW - timedelta(hours=1)
IMAGE_CONFIG = sorted(IMAGE_CONFIG_MEDIA_TYPES)[0]
RULE = make_rule("app:.*", untagged_only=True, ago=timedelta(days=30))


def dg(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")[:64]


def oci(name: str, when: datetime, tags: tuple[str, ...] = ()) -> Manifest:
    return Manifest(dg(name), OCI_MANIFEST, when, tags=tags, config_media_type=IMAGE_CONFIG)


def snapshot(kept: int) -> RepositorySnapshot:
    manifests = [oci(f"t{i}", NEW, (f"t{i}",)) for i in range(kept)]
    manifests += [oci("u", OLD), oci("sbom", NEW, ("sbom-u",)), oci("v", OLD)]
    manifests.append(Manifest(dg("docker"), DOCKER_MANIFEST, OLD))
    tags = [Tag(t, m.digest, NEW) for m in manifests for t in m.tags]
    return RepositorySnapshot("app", tuple(tags), tuple(manifests))


def test_few_candidates_among_many_images_read_the_referrers_api() -> None:
    planner = RepositoryPlanner(snapshot(kept=20), RULE, NOW)
    candidates = {dg("u"), dg("v"), dg("docker")}
    assert planner.bodies_needed() == {dg("u"), dg("v")}  # a Docker manifest has no subject
    assert planner.referrers_needed() == candidates  # ...but may be one
    bodies = {d: ManifestBody(d, OCI_MANIFEST) for d in (dg("u"), dg("v"))}
    plan = planner.plan(bodies, {dg("u"): (dg("sbom"),), dg("v"): (), dg("docker"): ()})
    assert {d.digest for d in plan.manifest_deletions} == {dg("v"), dg("docker")}
    kept = {k.ref: k.reason for k in plan.kept}
    assert kept[dg("u")].startswith("subject of kept referrer sha256:736")  # the tagged sbom
    assert plan.errors == ()


def test_an_unreadable_referrers_answer_keeps_that_candidate() -> None:
    planner = RepositoryPlanner(snapshot(kept=20), RULE, NOW)
    bodies = {d: ManifestBody(d, OCI_MANIFEST) for d in (dg("u"), dg("v"))}
    plan = planner.plan(bodies, {dg("u"): (dg("sbom"),), dg("v"): None, dg("docker"): ()})
    assert {d.digest for d in plan.manifest_deletions} == {dg("docker")}
    assert "referrers" in {k.ref: k.reason for k in plan.kept}[dg("v")]
    assert plan.errors


def test_without_the_referrers_answers_nothing_that_a_kept_referrer_might_need_goes() -> None:
    planner = RepositoryPlanner(snapshot(kept=20), RULE, NOW)
    bodies = {d: ManifestBody(d, OCI_MANIFEST) for d in (dg("u"), dg("v"))}
    plan = planner.plan(bodies)  # the referrers were not read: the tagged images might be
    assert plan.manifest_deletions == ()


def test_when_most_may_go_every_oci_body_is_read_instead() -> None:
    planner = RepositoryPlanner(snapshot(kept=1), RULE, NOW)
    every_oci = {dg(n) for n in ("t0", "u", "sbom", "v")}
    assert planner.bodies_needed() == every_oci and planner.referrers_needed() == frozenset()
    bodies = {d: ManifestBody(d, OCI_MANIFEST) for d in every_oci}
    bodies[dg("sbom")] = ManifestBody(dg("sbom"), OCI_MANIFEST, subject=dg("u"))
    plan = planner.plan(bodies)
    assert {d.digest for d in plan.manifest_deletions} == {dg("v"), dg("docker")}
