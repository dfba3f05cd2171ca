"""The planner: PURE. Snapshot + rule + now -> Plan. Never touches the network.

INTERFACE FIRST: the plan types below are the contract the executor and report share.
Every deletion and every keep carries a human-readable reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TagDeletion:
    tag: str
    digest: str
    reason: str
    #: PATCH the tag to deleteEnabled/writeEnabled=true first (--include-locked on a locked tag).
    unlock: bool = False
    #: Digest of a manifest whose deletion removes this tag: no request of its own.
    removed_with: str | None = None


@dataclass(frozen=True)
class ManifestDeletion:
    digest: str
    tags: tuple[str, ...]
    size: int | None
    reason: str
    unlock: bool = False
    #: Digest of a manifest whose deletion makes the registry remove this one (a referrer of a
    #: deleted subject): listed for the report, no request of its own.
    removed_with: str | None = None


@dataclass(frozen=True)
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

    @property
    def deletion_count(self) -> int:
        return len(self.tag_deletions) + len(self.manifest_deletions)
