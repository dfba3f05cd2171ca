"""Snapshot types: what the planner knows about one repository, as the registry listed it.

Frozen so that a plan can never be computed from a snapshot that changed under it.
Timestamps are timezone-aware UTC datetimes, or None when the registry sent none or an
unparseable one (the planner keeps such items: it cannot tell their age).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

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
#: Config media types of plain images: such manifests are taken to carry no `subject`.
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
    #: `configMediaType` from the listing: tells an image from an artifact (possible referrer).
    config_media_type: str | None = None
    delete_enabled: bool = True
    write_enabled: bool = True

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
