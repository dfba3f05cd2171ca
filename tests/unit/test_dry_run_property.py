"""Property: a dry run reports exactly what the real run then deletes, and changes nothing.

The planner's properties (test_planner_properties.py) hold for one plan; this one holds for the
whole service path (listing, body fetches, planning, executor, report) over random registries
with multi-arch images, referrers, cosign tags and locks, in the in-memory registry that keeps
ACR's delete semantics (a manifest's tags and referrers go with it).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta, timezone

import regex
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from purge.config.rules import Rule, TagFilter
from purge.config.settings import Config, Connection
from purge.model import (
    DOCKER_MANIFEST,
    OCI_ARTIFACT,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    ManifestBody,
    Tag,
)
from purge.service import run_purge
from tests.fakes import InMemoryRegistry

UTC = timezone.utc  # datetime.UTC needs Python 3.11; 3.10 is supported
NOW = datetime(2024, 6, 1, tzinfo=UTC)
REGISTRY = "prop.azurecr.io"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"


def dg(*seed: object) -> str:
    return "sha256:" + hashlib.sha256(repr(seed).encode()).hexdigest()


@st.composite
def registries(draw: st.DrawFn) -> list[tuple[str, Manifest, ManifestBody, list[Tag]]]:
    """Manifests of repositories `a` and `b`, each with its body and its tags."""
    entries: list[tuple[str, Manifest, ManifestBody, list[Tag]]] = []
    for repository in ("a", "b"):
        digests: list[str] = []
        for i in range(draw(st.integers(1, 7))):
            digest = dg(repository, i)
            kind = draw(st.sampled_from(["docker", "image", "index", "referrer"]))
            children: tuple[str, ...] = ()
            subject = None
            if kind == "index" and digests:
                children = tuple(draw(st.lists(st.sampled_from(digests), max_size=3, unique=True)))
            if kind == "referrer" and digests:
                subject = draw(st.sampled_from(digests))
            media_type = {
                "docker": DOCKER_MANIFEST,
                "image": OCI_MANIFEST,
                "index": OCI_INDEX,
                "referrer": OCI_ARTIFACT,
            }[kind]
            age = draw(st.sampled_from([0.5, 2.0, 10.0, 40.0]))
            manifest = Manifest(
                digest,
                media_type,
                NOW - timedelta(days=age),
                size=1000 * (i + 1),
                references=children if kind == "index" else None,
                config_media_type=IMAGE_CONFIG if kind == "image" else None,
                delete_enabled=draw(st.booleans()) or draw(st.booleans()),
            )
            body = ManifestBody(digest, media_type, children=children, subject=subject)
            names = draw(
                st.lists(st.sampled_from(["v1", "v2", "dev", "latest", "pr-1"]), max_size=2)
            )
            if kind == "referrer" and draw(st.booleans()):
                names = []  # signatures and SBOMs are mostly untagged
            if i < 2 and draw(st.booleans()):  # a cosign signature tag on an earlier image
                names.append(f"sha256-{digest.split(':')[1]}.sig")
            tags = [
                Tag(
                    f"{name}-{i}" if not name.startswith("sha256-") else name,
                    digest,
                    NOW - timedelta(days=draw(st.sampled_from([0.5, 5.0, 40.0]))),
                    write_enabled=draw(st.booleans()) or draw(st.booleans()),
                )
                for name in dict.fromkeys(names)
            ]
            entries.append((repository, manifest, body, tags))
            digests.append(digest)
    return entries


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    tag_regex = draw(st.sampled_from([".*", "^v", "dev|pr", "^sha256-"]))
    repo_regex = draw(st.sampled_from(["a", "b", "a|b", ".*"]))
    return Rule(
        name="prop",
        filters=(
            TagFilter(
                f"{repo_regex}:{tag_regex}", regex.compile(repo_regex), regex.compile(tag_regex)
            ),
        ),
        ago=timedelta(days=draw(st.sampled_from([0, 1, 7]))),
        keep=draw(st.integers(0, 2)),
        untagged=draw(st.booleans()),
        include_locked=draw(st.booleans()),
        protect=tuple(regex.compile(p) for p in draw(st.sampled_from([[], ["^v1"]]))),
    )


def build(entries: list[tuple[str, Manifest, ManifestBody, list[Tag]]]) -> InMemoryRegistry:
    registry = InMemoryRegistry(REGISTRY)
    for repository, manifest, body, tags in entries:
        registry.add_manifest(repository, manifest, body=body)
        for tag in tags:
            registry.add_tag(repository, tag)
    return registry


def state(registry: InMemoryRegistry) -> dict[str, tuple[set[str], set[str]]]:
    return {
        repo: (registry.tag_names(repo), registry.manifest_digests(repo)) for repo in ("a", "b")
    }


def locked_signature_of_a_locked_image() -> list[tuple[str, Manifest, ManifestBody, list[Tag]]]:
    """Found by CI: the image's delete takes its locked signature (deleted by a request of its
    own) and the emptied repository along; the signature's check then read a 404."""
    image, signature = dg("a", 0), dg("a", 1)
    old = NOW - timedelta(days=1)
    return [
        ("a", Manifest(image, DOCKER_MANIFEST, old, delete_enabled=False),
         ManifestBody(image, DOCKER_MANIFEST), []),
        ("a", Manifest(signature, OCI_ARTIFACT, old, delete_enabled=False),
         ManifestBody(signature, OCI_ARTIFACT, subject=image), []),
        ("b", Manifest(dg("b", 0), DOCKER_MANIFEST, old),
         ManifestBody(dg("b", 0), DOCKER_MANIFEST), []),
    ]  # fmt: skip


EVERYTHING_UNTAGGED_IN_A = Rule(
    name="prop",
    filters=(TagFilter("a:.*", regex.compile("a"), regex.compile(".*")),),
    ago=timedelta(0),
    keep=0,
    untagged=True,
    include_locked=True,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=registries(), rule=rules())
@example(entries=locked_signature_of_a_locked_image(), rule=EVERYTHING_UNTAGGED_IN_A)
def test_dry_run_reports_exactly_what_the_real_run_deletes(
    entries: list[tuple[str, Manifest, ManifestBody, list[Tag]]], rule: Rule
) -> None:
    config = Config(Connection(REGISTRY), (rule,))
    dry_registry, real_registry = build(entries), build(entries)
    before = state(dry_registry)

    dry = asyncio.run(run_purge(config, dry_run=True, registry=dry_registry, now=NOW)).to_dict()
    real = asyncio.run(run_purge(config, dry_run=False, registry=real_registry, now=NOW)).to_dict()

    assert state(dry_registry) == before
    assert dry_registry.mutating_calls() == 0
    assert real["errors"] == [] and dry["errors"] == []

    def reported(report: dict[str, object]) -> tuple[set[str], set[str]]:
        deleted = report["deleted"]
        assert isinstance(deleted, dict)
        tags = {f"{t['repository']}:{t['tag']}" for t in deleted["tags"]}
        manifests = {f"{m['repository']}@{m['digest']}" for m in deleted["manifests"]}
        return tags, manifests

    assert reported(dry) == reported(real)
    after = state(real_registry)
    gone_tags = {f"{r}:{t}" for r in before for t in before[r][0] - after[r][0]}
    gone_manifests = {f"{r}@{d}" for r in before for d in before[r][1] - after[r][1]}
    assert (gone_tags, gone_manifests) == reported(real)
