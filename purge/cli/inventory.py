"""The demo's view of a registry: one row per manifest, with what kind of thing it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from purge.cli.pull import PullError, RegistryReader
from purge.config.settings import Connection
from purge.model import (
    INDEX_MEDIA_TYPES,
    KNOWN_MEDIA_TYPES,
    Manifest,
    Tag,
    cosign_subject,
    short_digest,
)
from purge.registry.acr import open_registry


@dataclass(frozen=True)
class InventoryRow:
    digest: str
    tags: tuple[str, ...]
    age: str
    locked: str
    kind: str
    size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "tags": list(self.tags),
            "age": self.age,
            "locked": self.locked,
            "kind": self.kind,
            "size": self.size,
        }


async def take_inventory(
    connection: Connection, reader: RegistryReader, now: datetime
) -> dict[str, list[InventoryRow]]:
    """Each repository's manifests as the engine lists them, described by their bodies."""
    registry = open_registry(connection)
    inventory: dict[str, list[InventoryRow]] = {}
    try:
        async for repository in registry.list_repositories():
            tags = [tag async for tag in registry.list_tags(repository)]
            manifests = [m async for m in registry.list_manifests(repository)]
            bodies = {}
            for manifest in manifests:
                try:
                    _, media_type, document = await reader.manifest(repository, manifest.digest)
                    bodies[manifest.digest] = (media_type, document)
                except PullError:
                    pass  # described as unreadable below
            inventory[repository] = _rows(tags, manifests, bodies, now)
    finally:
        await registry.close()
    return dict(sorted(inventory.items()))


def _rows(
    tags: Sequence[Tag],
    manifests: Sequence[Manifest],
    bodies: dict[str, tuple[str, dict[str, Any]]],
    now: datetime,
) -> list[InventoryRow]:
    parents: dict[str, tuple[str, str]] = {}  # child digest -> (index digest, platform)
    for digest, (media_type, document) in bodies.items():
        if media_type in INDEX_MEDIA_TYPES:
            for entry in document.get("manifests") or []:
                platform = entry.get("platform") or {}
                label = "/".join(
                    str(platform[k]) for k in ("os", "architecture", "variant") if k in platform
                )
                parents[str(entry.get("digest"))] = (digest, label)
    tags_of: dict[str, list[Tag]] = {}
    for tag in tags:
        tags_of.setdefault(tag.digest, []).append(tag)
    rows = []
    for manifest in sorted(manifests, key=_newest_first):
        own_tags = tags_of.get(manifest.digest, [])
        locked = [t.name for t in own_tags if t.locked]
        lock_text = "manifest" if manifest.locked else ""
        if locked:
            lock_text = ", ".join(filter(None, [lock_text, "tag " + ", ".join(locked)]))
        body = bodies.get(manifest.digest)
        kind = _kind(manifest, body, parents, [t.name for t in own_tags])
        rows.append(
            InventoryRow(
                digest=manifest.digest,
                tags=tuple(t.name for t in own_tags),
                age=_age(manifest.last_updated, now),
                locked=lock_text or "no",
                kind=kind,
                size=manifest.size,
            )
        )
    return rows


def _newest_first(manifest: Manifest) -> tuple[float, str]:
    moment = manifest.last_updated
    return (-(moment.timestamp() if moment else 0.0), manifest.digest)


def _kind(
    manifest: Manifest,
    body: tuple[str, dict[str, Any]] | None,
    parents: dict[str, tuple[str, str]],
    tag_names: Sequence[str],
) -> str:
    if body is None:
        return "unreadable manifest"
    media_type, document = body
    if media_type in INDEX_MEDIA_TYPES:
        count = len(document.get("manifests") or [])
        name = "Docker manifest list" if "docker" in media_type else "multi-arch index"
        return f"{name} ({count} platforms)"
    subject = document.get("subject")
    if isinstance(subject, dict):
        artifact = str(document.get("artifactType") or "")
        what = "signature" if "signature" in artifact else "referrer"
        if "spdx" in artifact or "sbom" in artifact or "cyclonedx" in artifact:
            what = "SBOM"
        return f"{what} of {short_digest(str(subject.get('digest')))}"
    for name in tag_names:
        signed = cosign_subject(name)
        if signed:
            return f"cosign {name.rsplit('.', 1)[1]} of {short_digest(signed[0])}"
    if media_type not in KNOWN_MEDIA_TYPES:
        return f"unknown type {media_type}"
    label = "Docker image" if "docker" in media_type else "image"
    if manifest.digest in parents:
        index, platform = parents[manifest.digest]
        return f"{label} {platform} in {short_digest(index)}"
    return label


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "?"
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.0f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{max(seconds / 60, 1):.0f}m"
