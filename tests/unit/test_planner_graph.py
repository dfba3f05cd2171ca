"""Graph safety: indexes, referrers, cosign tags, unknown and unreadable manifests."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import regex

from purge.config.rules import Rule, TagFilter
from purge.model import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_ARTIFACT,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    ManifestBody,
    Plan,
    RepositorySnapshot,
    Tag,
)
from purge.planner import plan_repository, short

UTC = timezone.utc  # datetime.UTC needs Python 3.11; 3.10 is supported
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
SIG_CONFIG = "application/vnd.dev.cosign.artifact.sig.v1+json"


def dg(seed: object) -> str:
    return "sha256:" + hashlib.sha256(str(seed).encode()).hexdigest()


def rule(tag_regex: str = ".*", **kw: Any) -> Rule:
    kw.setdefault("untagged", True)
    f = TagFilter(f"app:{tag_regex}", regex.compile("app"), regex.compile(tag_regex))
    return Rule(name="r", filters=(f,), **kw)


class Repo:
    """Builds a snapshot: manifests with their bodies, and tags."""

    def __init__(self) -> None:
        self.tags: list[Tag] = []
        self.manifests: list[Manifest] = []
        self.bodies: dict[str, ManifestBody | None] = {}

    def tag(self, name: str, digest: str, days: float = 10, **kw: Any) -> Repo:
        self.tags.append(Tag(name, digest, NOW - timedelta(days=days), **kw))
        self.manifests = [
            Manifest(**{**m.__dict__, "tags": (*m.tags, name)}) if m.digest == digest else m
            for m in self.manifests
        ]
        return self

    def image(self, key: object, days: float = 10, **kw: Any) -> str:
        """A plain Docker image (never needs a body)."""
        digest = dg(key)
        kw.setdefault("media_type", DOCKER_MANIFEST)
        self.manifests.append(Manifest(digest, last_updated=NOW - timedelta(days=days), **kw))
        return digest

    def index(
        self, key: object, children: list[str], days: float = 10, listed: bool = True, **kw: Any
    ) -> str:
        """An OCI index; `listed` puts its children in the listing's references too."""
        digest = self.image(
            key, days, media_type=OCI_INDEX, references=tuple(children) if listed else None, **kw
        )
        self.bodies[digest] = ManifestBody(digest, OCI_INDEX, children=tuple(children))
        return digest

    def referrer(self, key: object, subject: str, days: float = 10, **kw: Any) -> str:
        """An OCI artifact (signature, SBOM) whose `subject` is another manifest."""
        digest = self.image(key, days, media_type=OCI_MANIFEST, config_media_type=SIG_CONFIG, **kw)
        self.bodies[digest] = ManifestBody(digest, OCI_MANIFEST, subject=subject)
        return digest

    def oci_image(self, key: object, days: float = 10, **kw: Any) -> str:
        """An OCI image whose body was read: it has no `subject` (only the body can say)."""
        kw.setdefault("config_media_type", IMAGE_CONFIG)
        digest = self.image(key, days, media_type=OCI_MANIFEST, **kw)
        self.bodies[digest] = ManifestBody(digest, OCI_MANIFEST)
        return digest

    def snapshot(self) -> RepositorySnapshot:
        return RepositorySnapshot("app", tuple(self.tags), tuple(self.manifests), self.bodies)

    def plan(self, r: Rule | None = None) -> Plan:
        return plan_repository(self.snapshot(), r or rule(), NOW)


def deleted(plan: Plan) -> set[str]:
    return {d.digest for d in plan.manifest_deletions}


def kept(plan: Plan) -> dict[str, str]:
    return {k.ref: k.reason for k in plan.kept}


def assert_consistent(plan: Plan, repo: Repo) -> None:
    """No kept manifest points at a deleted one; no surviving tag points at a deleted one."""
    gone = deleted(plan)
    gone_tags = {d.tag for d in plan.tag_deletions}
    for m in repo.manifests:
        if m.digest in gone:
            continue
        body = repo.bodies.get(m.digest)
        edges = set(m.references or ()) | set(body.children if body else ())
        if body and body.subject:
            edges.add(body.subject)
        assert not edges & gone, f"kept {m.digest} points at a deleted manifest"
    for t in repo.tags:
        if t.name not in gone_tags:
            assert t.digest not in gone, f"surviving tag {t.name} points at a deleted manifest"


# 1
def test_multi_arch_index_tagged_keeps_untagged_children() -> None:
    repo = Repo()
    amd, arm = repo.oci_image("amd"), repo.oci_image("arm")
    idx = repo.index("idx", [amd, arm])
    repo.tag("v1.2", idx, days=0.1)
    plan = repo.plan()
    assert plan.manifest_deletions == ()
    assert kept(plan) == {
        "v1.2": "newer than 1d (updated 2024-06-01T09:36:00+00:00)",
        amd: f"child of {short(idx)} (tagged v1.2)",
        arm: f"child of {short(idx)} (tagged v1.2)",
    }
    assert short(idx) == idx[:19] + "…"


# 2
def test_multi_arch_index_deleted_with_children_tag_removed_with_it() -> None:
    repo = Repo()
    amd, arm = repo.oci_image("amd"), repo.oci_image("arm")
    idx = repo.index("idx", [amd, arm])
    repo.tag("v1", idx)
    plan = repo.plan()
    assert deleted(plan) == {idx, amd, arm}
    assert [(t.tag, t.removed_with) for t in plan.tag_deletions] == [("v1", idx)]
    assert_consistent(plan, repo)


# 3
def test_index_with_tagged_and_untagged_children() -> None:
    repo = Repo()
    amd, arm = repo.oci_image("amd"), repo.oci_image("arm")
    repo.tag("amd-only", amd, days=0.1)
    idx = repo.index("idx", [amd, arm])
    repo.tag("old", idx)
    plan = repo.plan()
    assert deleted(plan) == {idx, arm}  # amd keeps its own, newer tag
    assert {t.tag for t in plan.tag_deletions} == {"old"}
    assert_consistent(plan, repo)


# 4
def test_nested_indexes_keep_every_level() -> None:
    repo = Repo()
    leaf = repo.oci_image("leaf")
    inner = repo.index("inner", [leaf], listed=False)
    outer = repo.index("outer", [inner])
    repo.tag("v1", outer, days=0.1)
    plan = repo.plan()
    assert plan.manifest_deletions == ()
    assert kept(plan)[inner] == f"child of {short(outer)} (tagged v1)"
    assert kept(plan)[leaf] == f"child of {short(inner)} (child of {short(outer)} (tagged v1))"


# 5
def test_locked_untagged_index_keeps_its_children() -> None:
    """acr purge deletes these children; we keep them and never unlock the index to get them."""
    repo = Repo()
    child = repo.oci_image("child")
    idx = repo.index("idx", [child], write_enabled=False)
    plan = repo.plan()
    assert plan.manifest_deletions == ()
    assert kept(plan) == {idx: "locked", child: f"child of {short(idx)} (locked)"}


# 6
def test_locked_index_with_include_locked_is_unlocked_and_deleted() -> None:
    repo = Repo()
    child = repo.oci_image("child")
    idx = repo.index("idx", [child], delete_enabled=False)
    plan = repo.plan(rule(include_locked=True))
    assert {(d.digest, d.unlock) for d in plan.manifest_deletions} == {(idx, True), (child, False)}


# 7
def test_index_behind_locked_tag_keeps_children() -> None:
    repo = Repo()
    child = repo.oci_image("child")
    idx = repo.index("idx", [child])
    repo.tag("release", idx, delete_enabled=False)
    plan = repo.plan()
    assert kept(plan) == {"release": "locked", child: f"child of {short(idx)} (tagged release)"}
    assert plan.deletion_count == 0


# 8
def test_shared_child_of_kept_and_deleted_index() -> None:
    repo = Repo()
    shared, only_old = repo.oci_image("shared"), repo.oci_image("only-old")
    new_idx = repo.index("new", [shared])
    old_idx = repo.index("old", [shared, only_old])
    repo.tag("new", new_idx, days=0.1).tag("old", old_idx)
    plan = repo.plan()
    assert deleted(plan) == {old_idx, only_old}
    assert kept(plan)[shared] == f"child of {short(new_idx)} (tagged new)"
    assert_consistent(plan, repo)


# 9
def test_signature_referrer_on_kept_image_is_kept() -> None:
    repo = Repo()
    img = repo.oci_image("img")
    repo.tag("v1", img, days=0.1)
    sig = repo.referrer("sig", img)
    plan = repo.plan()
    assert plan.manifest_deletions == ()
    assert kept(plan)[sig] == f"referrer of {short(img)} (tagged v1)"


# 10
def test_signature_referrer_on_deleted_image_is_removed_by_registry() -> None:
    repo = Repo()
    img = repo.oci_image("img")
    repo.tag("v1", img)
    sig = repo.referrer("sig", img)
    plan = repo.plan()
    by_digest = {d.digest: d for d in plan.manifest_deletions}
    assert set(by_digest) == {img, sig}
    assert by_digest[sig].removed_with == img
    assert by_digest[sig].reason == f"referrer of deleted {short(img)} (removed by the registry)"
    assert by_digest[img].removed_with is None


# 11
def test_sbom_chain_referrer_of_a_referrer() -> None:
    repo = Repo()
    img = repo.oci_image("img")
    sbom = repo.referrer("sbom", img)
    sbom_sig = repo.referrer("sbom-sig", sbom)
    repo.tag("v1", img, days=0.1)
    plan = repo.plan()
    assert kept(plan)[sbom_sig] == (
        f"referrer of {short(sbom)} (referrer of {short(img)} (tagged v1))"
    )
    repo.tags.clear()
    repo.tag("v1", img)
    plan = repo.plan()
    removed = {d.digest: d.removed_with for d in plan.manifest_deletions}
    assert removed == {img: None, sbom: img, sbom_sig: sbom}


# 12
def test_new_referrer_keeps_its_old_subject() -> None:
    """Deleting the subject would make the registry delete the (kept) referrer with it."""
    repo = Repo()
    img = repo.oci_image("img")
    sig = repo.referrer("sig", img, days=0.1)
    other = repo.oci_image("other")
    plan = repo.plan()
    assert kept(plan) == {
        sig: "newer than 1d (updated 2024-06-01T09:36:00+00:00)",
        img: f"subject of kept referrer {short(sig)}",
    }
    assert deleted(plan) == {other}


# 13
def test_locked_referrer_keeps_its_subject() -> None:
    repo = Repo()
    img = repo.oci_image("img")
    sig = repo.referrer("sig", img, delete_enabled=False)
    plan = repo.plan()
    assert kept(plan) == {sig: "locked", img: f"subject of kept referrer {short(sig)}"}


# 14
def test_locked_referrer_of_deleted_subject_with_include_locked_gets_its_own_request() -> None:
    repo = Repo()
    img = repo.oci_image("img")
    sig = repo.referrer("sig", img, delete_enabled=False)
    plan = repo.plan(rule(include_locked=True))
    by_digest = {d.digest: d for d in plan.manifest_deletions}
    assert by_digest[sig].unlock is True
    assert by_digest[sig].removed_with is None


# 15
def test_cosign_tags_follow_a_kept_image() -> None:
    repo = Repo()
    img = repo.image("img")
    sig = repo.image("sig-manifest")
    att = repo.image("att-manifest")
    hex_part = img.split(":")[1]
    repo.tag("v1", img, days=0.1)
    repo.tag(f"sha256-{hex_part}.sig", sig, days=30).tag(f"sha256-{hex_part}.att", att, days=30)
    plan = repo.plan()
    assert plan.deletion_count == 0
    assert kept(plan) == {
        "v1": "newer than 1d (updated 2024-06-01T09:36:00+00:00)",
        f"sha256-{hex_part}.sig": f"signature of {short(img)}",
        f"sha256-{hex_part}.att": f"attestation of {short(img)}",
    }


# 16
def test_cosign_tags_go_with_a_deleted_image() -> None:
    repo = Repo()
    img = repo.image("img")
    sig = repo.image("sig-manifest", days=30)
    hex_part = img.split(":")[1]
    repo.tag("v1", img).tag(f"sha256-{hex_part}.sbom", sig, days=0.5)  # sbom tag itself is new
    plan = repo.plan()
    assert kept(plan)[f"sha256-{hex_part}.sbom"].startswith("newer than 1d")
    assert deleted(plan) == {img}
    repo = Repo()
    repo.image("img")
    repo.image("sig-manifest", days=30)
    repo.tag("v1", img).tag(f"sha256-{hex_part}.sig", sig, days=30)
    plan = repo.plan()
    reasons = {t.tag: t.reason for t in plan.tag_deletions}
    assert reasons[f"sha256-{hex_part}.sig"] == f"signature of deleted {short(img)}"
    assert deleted(plan) == {img, sig}
    assert_consistent(plan, repo)


# 17
def test_cosign_tag_does_not_take_a_keep_slot_and_stays_with_kept_image() -> None:
    repo = Repo()
    img = repo.image("img", days=5)
    old = repo.image("old", days=9)
    sig = repo.image("sig", days=5)
    repo.tag("v2", img, days=5).tag("v1", old, days=9)
    repo.tag(f"sha256-{img.split(':')[1]}.sig", sig, days=4)
    plan = repo.plan(rule(keep=1))
    assert kept(plan)["v2"] == "kept by --keep 1"
    assert kept(plan)[f"sha256-{img.split(':')[1]}.sig"] == f"signature of {short(img)}"
    assert deleted(plan) == {old}


# 18
def test_cosign_tag_outside_filter_is_never_deleted() -> None:
    repo = Repo()
    img = repo.image("img")
    sig = repo.image("sig")
    repo.tag("v1", img).tag(f"sha256-{img.split(':')[1]}.sig", sig)
    plan = repo.plan(rule("^v"))
    assert {t.tag for t in plan.tag_deletions} == {"v1"}
    assert deleted(plan) == {img}  # the signed image goes; its signature tag stays (filter)
    assert sig not in deleted(plan)


# 19
def test_cosign_tag_kept_makes_its_signature_manifest_stay() -> None:
    """Kept only grows: a cosign tag kept for its subject also keeps what it points at."""
    repo = Repo()
    img = repo.image("img")
    sig = repo.index("sig-index", [repo.oci_image("sig-layer")])
    repo.tag("latest", img, days=0.1).tag(f"sha256-{img.split(':')[1]}.sig", sig)
    plan = repo.plan()
    assert plan.deletion_count == 0


# 20
def test_cosign_tag_for_missing_manifest_is_an_ordinary_tag() -> None:
    repo = Repo()
    sig = repo.image("sig")
    repo.tag(f"sha256-{'ab' * 32}.sig", sig)
    plan = repo.plan()
    assert [t.reason for t in plan.tag_deletions] == [
        "older than 1d (updated 2024-05-22T12:00:00+00:00)"
    ]


# 21
def test_unknown_media_type_with_unreadable_body_fails_closed() -> None:
    repo = Repo()
    weird = repo.image("weird", media_type="application/vnd.example+json")
    victim = repo.image("victim")
    repo.bodies[weird] = None
    plan = repo.plan()
    assert plan.manifest_deletions == ()
    assert kept(plan)[weird] == "unknown media type 'application/vnd.example+json'"
    assert kept(plan)[victim].startswith("not deleted: kept manifest")
    assert "body is unavailable" in plan.errors[0]


# 22
def test_unknown_media_type_with_readable_body_protects_its_children() -> None:
    repo = Repo()
    child = repo.image("child")
    other = repo.image("other")
    weird = repo.image("weird", media_type=None)
    repo.bodies[weird] = ManifestBody(weird, None, children=(child,))
    plan = repo.plan()
    assert deleted(plan) == {other}
    assert kept(plan)[child] == f"child of {short(weird)} (unknown media type None)"


# 23
def test_tagged_index_whose_body_cannot_be_fetched_fails_closed() -> None:
    repo = Repo()
    child = repo.oci_image("child")
    idx = repo.index("idx", [child], listed=False)
    repo.bodies[idx] = None
    repo.tag("v1", idx, days=0.1)
    plan = repo.plan()
    assert plan.manifest_deletions == ()
    assert kept(plan)[child] == (
        f"not deleted: kept index {short(idx)} has unknown children (body unavailable)"
    )
    assert plan.errors == (
        f"kept index {short(idx)} has unknown children (body unavailable): "
        "no untagged manifest deleted in this repository",
    )


# 24
def test_docker_manifest_list_without_references_or_body_fails_closed() -> None:
    repo = Repo()
    lst = repo.image("list", media_type=DOCKER_MANIFEST_LIST)
    repo.tag("v1", lst, days=0.1)
    repo.image("orphan")
    assert repo.plan().manifest_deletions == ()
    repo.bodies[lst] = ManifestBody(lst, DOCKER_MANIFEST_LIST, children=())
    assert len(repo.plan().manifest_deletions) == 1


# 25
def test_possible_referrer_without_body_is_kept_and_stops_manifest_deletions() -> None:
    """Its subject is unknown and may be any candidate: deleting that would take it along."""
    repo = Repo()
    art = repo.image("art", media_type=OCI_ARTIFACT)
    plain = repo.image("plain")
    plan = repo.plan()
    assert plan.manifest_deletions == ()
    assert kept(plan) == {
        art: "cannot tell its subject: manifest body unavailable",
        plain: f"not deleted: kept manifest {short(art)} may be a referrer but its body is "
        "unavailable",
    }
    assert plan.errors[0] == f"manifest {art}: body unavailable, cannot tell its subject"
    assert "no untagged manifest deleted" in plan.errors[1]
    repo.bodies[art] = ManifestBody(art, OCI_ARTIFACT, subject=None)
    assert deleted(repo.plan()) == {art, plain}


# 26
def test_kept_possible_referrer_without_body_fails_closed() -> None:
    """A tagged artifact's subject is unknown: a deletion could take it with its subject."""
    repo = Repo()
    art = repo.image("art", media_type=OCI_MANIFEST)  # no configMediaType listed
    repo.tag("v1", art, days=0.1)
    repo.image("plain")
    plan = repo.plan()
    assert plan.manifest_deletions == ()
    assert "may be a referrer" in plan.errors[0]


# 27
def test_referrer_whose_subject_is_not_listed_is_kept() -> None:
    repo = Repo()
    ghost = dg("ghost")
    sig = repo.referrer("sig", ghost)
    plan = repo.plan()
    assert kept(plan) == {sig: f"its subject {short(ghost)} is not in the listing"}


# 28
def test_tag_pointing_at_unlisted_manifest_fails_closed_until_its_body_is_known() -> None:
    """A push during the listing: the new index may reference old untagged manifests."""
    repo = Repo()
    old = repo.oci_image("old")
    pushed = dg("pushed-during-listing")
    repo.tags.append(Tag("new", pushed, NOW))
    plan = repo.plan()
    assert plan.manifest_deletions == ()
    repo.bodies[pushed] = ManifestBody(pushed, OCI_INDEX, children=(old,))
    plan = repo.plan()
    assert kept(plan)[old] == f"child of {short(pushed)} (tagged new)"
    repo.bodies[pushed] = ManifestBody(pushed, OCI_INDEX, children=())
    assert deleted(repo.plan()) == {old}


# 29
def test_aggressive_rule_deletes_all_but_what_kept_items_need() -> None:
    repo = Repo()
    a, b = repo.oci_image("a"), repo.oci_image("b")
    idx = repo.index("idx", [a, b])
    locked_child = repo.oci_image("lc")
    locked_idx = repo.index("lidx", [locked_child], delete_enabled=False)
    sig = repo.referrer("sig", idx)
    repo.tag("v1", idx).tag("latest", idx).tag("pinned", locked_idx)
    plan = repo.plan(rule(".*", ago=timedelta(0)))
    assert deleted(plan) == {a, b, idx, sig}
    assert {t.tag: t.removed_with for t in plan.tag_deletions} == {
        "v1": idx,
        "latest": idx,
        "pinned": None,
    }
    assert kept(plan)[locked_child] == f"child of {short(locked_idx)} (locked)"
    assert_consistent(plan, repo)


# 30
def test_untagged_only_respects_the_graph() -> None:
    repo = Repo()
    child = repo.oci_image("child")
    idx = repo.index("idx", [child])
    repo.tag("v1", idx)
    orphan = repo.image("orphan")
    plan = repo.plan(Rule(name="r", untagged_only=True))
    assert deleted(plan) == {orphan}
    assert kept(plan)[child] == f"child of {short(idx)} (tagged v1)"
