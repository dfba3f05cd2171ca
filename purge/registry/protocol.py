"""The Registry protocol: the only way the engine talks to a registry.

`purge.registry.acr` implements it on azure-containerregistry; `tests.fakes` keeps one in memory for
unit tests. Errors are the engine's own, so that the planner and executor never see SDK types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from purge.model import Manifest, ManifestBody, Tag


class RegistryError(Exception):
    """A registry call failed. `status` is the HTTP status when there was one; `retry_after`
    the seconds its `Retry-After` header asked for."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class NoAnswer(RegistryError):
    """The request got no complete answer: the connection failed, or the answer stopped coming."""


def is_passing(exc: BaseException) -> bool:
    """Whether the same request may succeed later: no answer, throttled (429), timed out (408)
    or a server error (5xx). Refusals and answers that make no sense are not."""
    if isinstance(exc, NoAnswer):
        return True
    status = exc.status if isinstance(exc, RegistryError) else None
    return status is not None and (status in (408, 429) or status >= 500)


class PermissionDenied(RegistryError):
    """401/403: the identity lacks a role. The message names the role it needs."""


class NotFound(RegistryError):
    """404 on a read: the repository, tag or manifest does not exist."""


class ManifestUnreadable(RegistryError):
    """A manifest body could not be fetched, verified against its digest, or parsed."""


@dataclass(frozen=True)
class RepositoryAttributes:
    """`changeableAttributes` of `/acr/v1/{repo}`: a repository-wide lock and its visibility."""

    delete_enabled: bool
    write_enabled: bool
    list_enabled: bool


@dataclass(frozen=True)
class RemovedTag:
    """What the registry answered to a tag delete: the digest it removed the tag from, as ACR
    says in `X-Ms-Int-Docker-Content-Digest`, or None when it did not say."""

    digest: str | None


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

    async def list_referrers(self, repository: str, digest: str) -> tuple[str, ...]:
        """Digests of the manifests whose `subject` is `digest` (the OCI referrers API)."""
        ...

    async def delete_tag(self, repository: str, tag: str) -> bool: ...

    async def remove_tag(self, repository: str, tag: str) -> RemovedTag | None:
        """Delete a tag and say where it pointed when deleted; None when it was already gone."""
        ...

    async def tag_state(self, repository: str, tag: str) -> Tag | None:
        """The tag as the registry has it now (`GET /acr/v1/{repo}/_tags/{tag}`); None: gone."""
        ...

    async def manifest_state(self, repository: str, digest: str) -> Manifest | None:
        """The manifest's properties now, with its tags (one read); None when it is gone."""
        ...

    async def put_tag(self, repository: str, tag: str, digest: str) -> None:
        """Point `tag` at the existing manifest `digest` (read its body, verify, PUT by tag)."""
        ...

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """DELETE a manifest (the registry removes its tags and referrers too), sent once.

        Never resent on its own after a 429 or a 5xx: the caller reads the manifest's tags and
        referrers again before sending it again (`executor.attempt`).
        """
        ...

    async def unlock_tag(self, repository: str, tag: str) -> None:
        """PATCH deleteEnabled and writeEnabled to true."""
        ...

    async def unlock_manifest(self, repository: str, digest: str) -> None: ...

    async def lock_tag(
        self, repository: str, tag: str, *, delete_enabled: bool, write_enabled: bool
    ) -> None:
        """PATCH a tag's deleteEnabled/writeEnabled back to what they were."""
        ...

    async def lock_manifest(
        self, repository: str, digest: str, *, delete_enabled: bool, write_enabled: bool
    ) -> None: ...

    async def repository_attributes(self, repository: str) -> RepositoryAttributes:
        """`GET /acr/v1/{repo}`; raises NotFound when the repository is gone."""
        ...

    async def lock_repository(
        self, repository: str, *, delete_enabled: bool, write_enabled: bool
    ) -> None:
        """`PATCH /acr/v1/{repo}` deleteEnabled/writeEnabled."""
        ...

    async def close(self) -> None: ...
