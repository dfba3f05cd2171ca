"""The contract every part shares: snapshot types (what the registry listed) and plan types.

Frozen so that a plan can never be computed from a snapshot that changed under it, and no part
can change a plan after the planner made it.
Timestamps are timezone-aware UTC datetimes, or None when the registry sent none or an
unparseable one (the planner keeps such items: it cannot tell their age).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_ARTIFACT = "application/vnd.oci.artifact.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"

#: Manifests that point at other manifests (multi-arch images).
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
#: Media types that can carry an OCI 1.1 `subject` (signatures, SBOMs, attestations).
SUBJECT_CAPABLE_MEDIA_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX, OCI_ARTIFACT})
#: Config media types of plain images. They say nothing about a `subject`: an image manifest
#: with one may still be a referrer (an SBOM, an attestation), so the planner reads its body.
IMAGE_CONFIG_MEDIA_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
#: Every media type the planner understands; anything else is kept.
KNOWN_MEDIA_TYPES = frozenset(
    {
        OCI_MANIFEST,
        OCI_INDEX,
        OCI_ARTIFACT,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST_V1,
    }
)


@dataclass(frozen=True)
class Tag:
    """One tag as `GET /acr/v1/{repo}/_tags` lists it."""

    name: str
    digest: str
    last_updated: datetime | None
    created: datetime | None = None
    delete_enabled: bool = True
    write_enabled: bool = True
    #: `lastUpdateTime` in 100 ns ticks (all of ACR's digits), for ordering; None: derive it.
    updated_ticks: int | None = None
    #: Position in the registry's `orderby=timedesc` listing: `--keep`'s tie-break, as in
    #: acr purge; None when the listing did not say.
    listed: int | None = None

    @property
    def locked(self) -> bool:
        """acr purge's definition: a tag is locked if it may not be deleted or written."""
        return not (self.delete_enabled and self.write_enabled)


@dataclass(frozen=True)
class Manifest:
    """One manifest as `GET /acr/v1/{repo}/_manifests` lists it."""

    digest: str
    media_type: str | None
    last_updated: datetime | None
    created: datetime | None = None
    size: int | None = None
    tags: tuple[str, ...] = ()
    #: Child digests of an index as the listing gives them; None when the listing did not say.
    references: tuple[str, ...] | None = None
    #: `configMediaType` from the listing, as listed. Never read to decide whether a manifest
    #: has a `subject`: any OCI manifest may have one, so the planner reads that (its body or
    #: the referrers API).
    config_media_type: str | None = None
    delete_enabled: bool = True
    write_enabled: bool = True
    #: `lastUpdateTime` in 100 ns ticks (all of ACR's digits), for ordering; None: derive it.
    updated_ticks: int | None = None

    @property
    def locked(self) -> bool:
        return not (self.delete_enabled and self.write_enabled)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


@dataclass(frozen=True)
class ManifestBody:
    """What the planner needs from a manifest's content, parsed from `GET /v2/.../manifests/`."""

    digest: str
    media_type: str | None
    #: `manifests[].digest` of an index; empty for an image.
    children: tuple[str, ...] = ()
    #: `subject.digest` of a referrer (signature, SBOM, attestation), else None.
    subject: str | None = None


@dataclass(frozen=True)
class RepositorySnapshot:
    """Everything listed for one repository, plus the manifest bodies fetched for it.

    `bodies` maps a digest to its parsed body, or to None when fetching or parsing failed
    (the planner then keeps that manifest and everything it might reference).
    """

    name: str
    tags: tuple[Tag, ...]
    manifests: tuple[Manifest, ...]
    bodies: Mapping[str, ManifestBody | None] = field(default_factory=dict)
    #: Subject digest -> digests of its referrers (`GET /v2/{repo}/referrers/{digest}`), or None
    #: when that read failed. Read instead of bodies when it costs fewer reads (the planner).
    referrers: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    #: Manifest digest -> when this project deleted its last tag (from the run history; only
    #: rules with a grace read it).
    untagged_at: Mapping[str, datetime] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Plan types: what the planner decides, the executor carries out and the report tells.


@dataclass(frozen=True, slots=True)
class TagDeletion:
    tag: str
    digest: str
    reason: str
    #: PATCH the tag to deleteEnabled/writeEnabled=true first (--include-locked on a locked tag).
    #: With removed_with set, unlock it before that manifest's delete: the registry refuses to
    #: delete a manifest that has a locked tag.
    unlock: bool = False
    #: Digest of a manifest whose deletion removes this tag: no request of its own.
    removed_with: str | None = None
    #: (deleteEnabled, writeEnabled) as listed: put back when an unlocked tag is not deleted.
    locks: tuple[bool, bool] = (True, True)


@dataclass(frozen=True, slots=True)
class ManifestDeletion:
    digest: str
    tags: tuple[str, ...]
    size: int | None
    reason: str
    unlock: bool = False
    #: Digest of a manifest whose deletion makes the registry remove this one (a referrer of a
    #: deleted subject): listed for the report, no request of its own.
    removed_with: str | None = None
    #: (deleteEnabled, writeEnabled) as listed: put back when an unlocked manifest stays.
    locks: tuple[bool, bool] = (True, True)
    #: As listed; the run history records it with the deletion.
    media_type: str | None = None


@dataclass(frozen=True, slots=True)
class Keep:
    kind: Literal["tag", "manifest"]
    ref: str  # tag name or digest
    digest: str
    reason: str


@dataclass(frozen=True)
class Plan:
    repository: str
    rule: str
    tag_deletions: tuple[TagDeletion, ...] = ()
    manifest_deletions: tuple[ManifestDeletion, ...] = ()
    kept: tuple[Keep, ...] = ()
    #: Problems that made the planner keep something it might otherwise delete (fail closed).
    errors: tuple[str, ...] = ()
    #: Tags + manifests listed in the repository: the base of a `--max-deletions P%` guard.
    listed: int = 0
    #: Deleted index digest -> the children the plan deletes too (from listing and bodies): the
    #: executor deletes an index before them, and keeps them when the index's delete fails.
    children: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: A locked repository's (deleteEnabled, writeEnabled) when --include-locked deletes in it:
    #: the executor unlocks the repository for the deletions and puts these back afterwards.
    unlock_repository: tuple[bool, bool] | None = None

    @property
    def deletion_count(self) -> int:
        return len(self.tag_deletions) + len(self.manifest_deletions)


# --------------------------------------------------------------------------------------------
# Names shared by the planner, the report and the demo.

#: A cosign-style tag `sha256-<hex>.sig|.att|.sbom`: it signs (attests) `sha256:<hex>`.
COSIGN_TAG = re.compile(r"sha256-([0-9a-f]{64})\.(sig|att|sbom)")
COSIGN_KINDS = {"sig": "signature", "att": "attestation", "sbom": "sbom"}


def cosign_subject(tag: str) -> tuple[str, str] | None:
    """(subject digest, kind) of a cosign-style tag, or None for any other tag."""
    match = COSIGN_TAG.fullmatch(tag)
    if match is None:
        return None
    return f"sha256:{match.group(1)}", COSIGN_KINDS[match.group(2)]


def short_digest(digest: str, ellipsis: str = "") -> str:
    """`sha256:0123456789ab`: enough to find a manifest, short enough to read."""
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:12]}{ellipsis}" if len(hex_part) > 12 else digest


def short_tag(tag: str) -> str:
    """A cosign tag shortened for tables (`sha256-0123456789ab….sig`); other tags as they are."""
    match = COSIGN_TAG.fullmatch(tag)
    return f"sha256-{match.group(1)[:12]}….{match.group(2)}" if match else tag
