"""The Registry protocol: the only way the engine talks to a registry.

`purge.registry.acr` implements it on azure-containerregistry; `tests.fakes` keeps one in memory for
unit tests. Errors are the engine's own, so that the planner and executor never see SDK types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from purge.model import Manifest, ManifestBody, Tag


class RegistryError(Exception):
    """A registry call failed. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PermissionDenied(RegistryError):
    """401/403: the identity lacks a role. The message names the role it needs."""


class NotFound(RegistryError):
    """404 on a read: the repository, tag or manifest does not exist."""


class ManifestUnreadable(RegistryError):
    """A manifest body could not be fetched, verified against its digest, or parsed."""


class Registry(Protocol):
    """What the planner and executor need from a registry. All calls are async.

    Listings are async iterators so that pages stream instead of being held whole.
    Deletes return True when they deleted something and False when it was already gone (404).
    """

    @property
    def login_server(self) -> str: ...

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Hold one of the registry's request slots: the run's one concurrency limit.

        The executor holds a slot around each item (its unlock and delete) and the service
        around each manifest fetch; requests made while holding one take no other.
        """
        ...

    def list_repositories(self) -> AsyncIterator[str]: ...

    def list_tags(self, repository: str) -> AsyncIterator[Tag]:
        """Tags newest first (`orderby=timedesc`)."""
        ...

    def list_manifests(self, repository: str) -> AsyncIterator[Manifest]: ...

    async def get_manifest(self, repository: str, digest: str) -> ManifestBody:
        """Fetch, verify and parse a manifest body; raises ManifestUnreadable."""
        ...

    async def delete_tag(self, repository: str, tag: str) -> bool: ...

    async def delete_manifest(self, repository: str, digest: str) -> bool: ...

    async def unlock_tag(self, repository: str, tag: str) -> None:
        """PATCH deleteEnabled and writeEnabled to true."""
        ...

    async def unlock_manifest(self, repository: str, digest: str) -> None: ...

    async def close(self) -> None: ...
