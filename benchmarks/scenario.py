"""The benchmark registry, described once so that every script and the smoke test agree on it.

`purge_scenario` writes an acr_emulator scenario (bulk single-tag images via `generate`, plus per
repository: untagged manifests old and new, an old and a new multi-arch index, a signature on the
old index). `expected_deletions` says what `RULE` must delete in it, so a benchmark can check that
it measured a correct purge, not a fast wrong one. `synthetic_repositories` feeds the memory
benchmark lazily: one repository's snapshot exists at a time, so RSS measures the engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from purge.model import OCI_INDEX, OCI_MANIFEST, Manifest, RepositorySnapshot, Tag

#: The rule every purge benchmark runs: all repositories, 30 days, untagged manifests too.
AGO_DAYS = 30
RULE = f"acr purge --filter '.*:.*' --ago {AGO_DAYS}d --untagged"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
#: Spacing of generated tags; the eligibility cut falls half a step from a tag on either side.
STEP_SECONDS = 3600
MULTI_ARCH_CHILDREN = 2


@dataclass(frozen=True)
class Shape:
    """How big the benchmark registry is; `eligible` is the share of tags older than --ago."""

    repositories: int = 50
    tags: int = 400
    eligible: float = 0.8
    #: untagged manifests per repository, as a share of `tags`; half old (deleted), half new
    untagged: float = 0.05

    def __post_init__(self) -> None:
        if self.repositories < 1:
            raise ValueError(f"--repos must be at least 1, got {self.repositories}")
        if self.tags < 4:
            raise ValueError(
                f"--tags must be at least 4 (2 go to multi-arch images), got {self.tags}"
            )
        if not 0.0 <= self.eligible <= 1.0:
            raise ValueError(f"eligible share must be within 0..1, got {self.eligible}")

    @property
    def generated_tags(self) -> int:
        """Single-tag images per repository (two tags go to the multi-arch indexes)."""
        return self.tags - 2

    @property
    def eligible_tags(self) -> int:
        return round(self.generated_tags * self.eligible)

    @property
    def old_untagged(self) -> int:
        return max(1, round(self.tags * self.untagged / 2))

    @property
    def total_tags(self) -> int:
        return self.repositories * self.tags


def repository_name(index: int) -> str:
    return f"team{index % 5}/service-{index:04d}"


def _repository(shape: Shape) -> dict[str, Any]:
    old = shape.old_untagged
    # Tag i of `generate` is at start + i*step; the first `eligible_tags` are older than --ago.
    start = AGO_DAYS * 86400 + shape.eligible_tags * STEP_SECONDS - STEP_SECONDS // 2
    manifests: list[dict[str, Any]] = []
    manifests += [{"id": f"orphan-old-{i}", "updated": "-60d"} for i in range(old)]
    manifests += [{"id": f"orphan-new-{i}", "updated": "-1h"} for i in range(old)]
    for age, name in (("-45d", "old"), ("-2d", "new")):
        children = [
            {"id": f"{name}-{arch}", "kind": "image", "platform": f"linux/{arch}", "updated": age}
            for arch in ("amd64", "arm64")[:MULTI_ARCH_CHILDREN]
        ]
        manifests += children
        manifests.append(
            {
                "id": f"multi-{name}",
                "kind": "index",
                "children": [c["id"] for c in children],
                "updated": age,
                "tags": [f"multi-{name}"],
            }
        )
    manifests.append(
        {
            "id": "signature",
            "kind": "artifact",
            "subject": "multi-old",
            "updated": "-44d",
            "artifactType": "application/vnd.cncf.notary.signature",
        }
    )
    generate = {
        "count": shape.generated_tags,
        "tagPrefix": "build-",
        "start": f"-{start}s",
        "step": f"{STEP_SECONDS}s",
    }
    return {"manifests": manifests, "generate": generate}


def purge_scenario(shape: Shape) -> dict[str, Any]:
    """An acr_emulator scenario of `shape.repositories` identical-shaped repositories."""
    return {
        "description": f"benchmark: {shape.repositories} repositories x {shape.tags} tags",
        "repositories": {repository_name(i): _repository(shape) for i in range(shape.repositories)},
    }


@dataclass(frozen=True)
class Expected:
    """What RULE deletes: tags and manifests as the report counts them, and delete requests."""

    tags: int
    manifests: int
    #: deletions that need a request of their own (the rest go with their manifest or subject)
    requests: int


def expected_deletions(shape: Shape) -> Expected:
    """Per repository: eligible images and their tags, old orphans, the old index, its two
    children and its signature (removed with the index: no request)."""
    per_tags = shape.eligible_tags + 1  # + the old index's tag
    per_manifests = shape.eligible_tags + shape.old_untagged + 1 + MULTI_ARCH_CHILDREN + 1
    per_requests = per_manifests - 1  # the signature goes with its subject
    n = shape.repositories
    return Expected(per_tags * n, per_manifests * n, per_requests * n)


# ---------------------------------------------------------------- memory benchmark


def _digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def synthetic_snapshot(
    index: int, tags: int, now: datetime, eligible: float = 0.8
) -> RepositorySnapshot:
    """One repository as its listing would come back: `tags - 1` single-tag images, newest
    first, an old tagged multi-arch index with two children, and a few untagged manifests.

    As on ACR, the index is listed without `references`: its children are in its body only
    (`synthetic_children`)."""
    name = repository_name(index)
    cut = now - timedelta(days=AGO_DAYS)
    old_count = round(tags * eligible)
    tag_items: list[Tag] = []
    manifest_items: list[Manifest] = []
    for i in range(tags - 1):  # the last tag goes to the multi-arch index
        # newest first: the first `tags - old_count` are newer than the cut, the rest older
        when = cut + timedelta(hours=tags - old_count - i) - timedelta(minutes=30)
        digest = _digest(name, i)
        tag_items.append(Tag(f"build-{i}", digest, when, when))
        manifest_items.append(
            Manifest(
                digest, OCI_MANIFEST, when, when, 1000 + i, (f"build-{i}",), None, IMAGE_CONFIG
            )
        )
    old = cut - timedelta(days=15)
    kids = synthetic_children(name)
    for kid in kids:
        manifest_items.append(Manifest(kid, OCI_MANIFEST, old, old, 500, (), None, IMAGE_CONFIG))
    index_digest = _digest(name, "index")
    manifest_items.append(Manifest(index_digest, OCI_INDEX, old, old, 300, ("multi",), None))
    tag_items.append(Tag("multi", index_digest, old, old))
    for k in range(max(1, tags // 40)):
        manifest_items.append(
            Manifest(
                _digest(name, "orphan", k), OCI_MANIFEST, old, old, 400, (), None, IMAGE_CONFIG
            )
        )
    tag_items.sort(key=lambda t: t.last_updated or now, reverse=True)
    return RepositorySnapshot(name, tuple(tag_items), tuple(manifest_items))


def synthetic_children(repository: str) -> tuple[str, ...]:
    """The children in the body of `repository`'s multi-arch index (not in its listing)."""
    return tuple(_digest(repository, "child", k) for k in range(MULTI_ARCH_CHILDREN))


def synthetic_repositories(
    repositories: int, tags: int, now: datetime | None = None
) -> Iterator[RepositorySnapshot]:
    """Lazily, one snapshot per repository: nothing of a repository outlives its turn."""
    moment = now or datetime.now(timezone.utc)
    for index in range(repositories):
        yield synthetic_snapshot(index, tags, moment)


__all__ = [
    "RULE",
    "Expected",
    "Shape",
    "expected_deletions",
    "purge_scenario",
    "repository_name",
    "synthetic_children",
    "synthetic_repositories",
    "synthetic_snapshot",
]
