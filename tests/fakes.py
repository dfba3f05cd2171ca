"""InMemoryRegistry: a Registry kept in a dict, with ACR's delete semantics, for unit tests.

It exists so that the executor and service can be tested without sockets, yet against the
behaviour that matters for safety: deleting a manifest also removes its tags and (recursively)
its referrers; locked items refuse deletes; a missing item deletes as `False` (404). It counts
every call and can be told to fail chosen calls, to prove failure isolation and fail-closed paths.
Integration tests use the real SDK against `acr_emulator` instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from purge.model import Manifest, ManifestBody, Tag
from purge.registry.protocol import (
    ManifestUnreadable,
    NotFound,
    RegistryError,
    RemovedTag,
    RepositoryAttributes,
)

#: The status ACR answers when a delete hits a locked (delete- or write-disabled) item.
LOCKED_STATUS = 405


@dataclass
class _Failure:
    error: BaseException
    repository: str | None
    ref: str | None
    times: int | None  # None: every matching call
    after: int  # listings: items yielded before the failure (a partial listing)


@dataclass
class _Repository:
    tags: dict[str, Tag] = field(default_factory=dict)
    manifests: dict[str, Manifest] = field(default_factory=dict)
    bodies: dict[str, ManifestBody] = field(default_factory=dict)


class InMemoryRegistry:
    """A Registry in memory. Build it with `add_manifest` / `add_tag`, then hand it to the engine.

    `calls` counts calls by method name; `log` records `(method, repository, ref)` in order;
    `delay` (seconds) is slept in every call so that concurrency and deadlines can be observed;
    `max_in_flight` is the highest number of calls seen running at once; `concurrency` is the
    number of slots `slot()` hands out (the registry's request limit).
    """

    def __init__(
        self,
        login_server: str = "registry.example.azurecr.io",
        *,
        delay: float = 0.0,
        concurrency: int = 16,
    ):
        self._login_server = login_server
        self._slots = asyncio.Semaphore(concurrency)
        self._repos: dict[str, _Repository] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, str, str]] = []
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False
        #: Repository-wide `changeableAttributes` (GET /acr/v1/{repo}); absent: all enabled.
        self.repository_locks: dict[str, RepositoryAttributes] = {}

    def slot(self) -> asyncio.Semaphore:
        return self._slots

    # --- building and inspecting state -------------------------------------------------

    def add_manifest(
        self, repository: str, manifest: Manifest, *, body: ManifestBody | None = None
    ) -> None:
        """Store a manifest (its `tags` field is ignored: tags come from `add_tag`)."""
        repo = self._repos.setdefault(repository, _Repository())
        repo.manifests[manifest.digest] = dataclasses.replace(manifest, tags=())
        if body is not None:
            repo.bodies[manifest.digest] = body

    def add_tag(self, repository: str, tag: Tag) -> None:
        repo = self._repos.setdefault(repository, _Repository())
        if tag.digest not in repo.manifests:
            raise ValueError(f"tag {tag.name!r} points at unknown manifest {tag.digest}")
        repo.tags[tag.name] = tag

    def tag_names(self, repository: str) -> set[str]:
        repo = self._repos.get(repository)
        return set(repo.tags) if repo else set()

    def manifest_digests(self, repository: str) -> set[str]:
        repo = self._repos.get(repository)
        return set(repo.manifests) if repo else set()

    def lock_state(self, repository: str, ref: str) -> tuple[bool, bool]:
        """(delete_enabled, write_enabled) of a tag name or a manifest digest."""
        repo = self._repos[repository]
        item: Tag | Manifest = repo.tags[ref] if ref in repo.tags else repo.manifests[ref]
        return item.delete_enabled, item.write_enabled

    def fail(
        self,
        method: str,
        *,
        repository: str | None = None,
        ref: str | None = None,
        error: BaseException | None = None,
        times: int | None = None,
        after: int = 0,
    ) -> None:
        """Make calls of `method` (optionally for one repository / ref) raise `error`.

        `times` limits how many calls fail; `after` lets a listing yield that many items first.
        """
        if not hasattr(self, method):
            raise ValueError(f"InMemoryRegistry has no method {method!r}")
        failure = _Failure(
            error if error is not None else RegistryError(f"injected failure in {method}"),
            repository,
            ref,
            times,
            after,
        )
        self._failures.setdefault(method, []).append(failure)

    def mutating_calls(self) -> int:
        """How many delete/unlock calls were made: zero in a dry run."""
        return sum(
            self.calls[m]
            for m in (
                "delete_tag",
                "delete_manifest",
                "unlock_tag",
                "unlock_manifest",
                "put_tag",
                "lock_tag",
                "lock_manifest",
                "lock_repository",
            )
        )

    # --- the Registry protocol ---------------------------------------------------------

    @property
    def login_server(self) -> str:
        return self._login_server

    async def list_repositories(self) -> AsyncIterator[str]:
        failure = await self._enter("list_repositories", "", "")
        try:
            for count, name in enumerate(sorted(self._repos)):
                self._maybe_fail_listing(failure, count)
                yield name
            self._maybe_fail_listing(failure, len(self._repos))
        finally:
            self._leave()

    async def list_tags(self, repository: str) -> AsyncIterator[Tag]:
        failure = await self._enter("list_tags", repository, "")
        try:
            repo = self._existing(repository)
            newest_first = sorted(
                repo.tags.values(),
                key=lambda t: t.last_updated.timestamp() if t.last_updated else 0,
            )[::-1]
            for count, tag in enumerate(newest_first):
                self._maybe_fail_listing(failure, count)
                yield tag
            self._maybe_fail_listing(failure, len(newest_first))
        finally:
            self._leave()

    async def list_manifests(self, repository: str) -> AsyncIterator[Manifest]:
        failure = await self._enter("list_manifests", repository, "")
        try:
            repo = self._existing(repository)
            manifests = list(repo.manifests.values())
            for count, manifest in enumerate(manifests):
                self._maybe_fail_listing(failure, count)
                tags = tuple(
                    sorted(t.name for t in repo.tags.values() if t.digest == manifest.digest)
                )
                yield dataclasses.replace(manifest, tags=tags)
            self._maybe_fail_listing(failure, len(manifests))
        finally:
            self._leave()

    async def get_manifest(self, repository: str, digest: str) -> ManifestBody:
        await self._call("get_manifest", repository, digest)
        repo = self._existing(repository)
        body = repo.bodies.get(digest)
        if body is None:
            raise ManifestUnreadable(f"{repository}@{digest}: no manifest body stored", status=404)
        return body

    async def delete_tag(self, repository: str, tag: str) -> bool:
        await self._call("delete_tag", repository, tag)
        repo = self._repos.get(repository)
        if repo is None or tag not in repo.tags:
            return False
        if repo.tags[tag].locked:
            raise RegistryError(f"{repository}:{tag} is locked", status=LOCKED_STATUS)
        del repo.tags[tag]
        return True

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        await self._call("delete_manifest", repository, digest)
        repo = self._repos.get(repository)
        if repo is None or digest not in repo.manifests:
            return False
        locked_tags = [t.name for t in repo.tags.values() if t.digest == digest and t.locked]
        if repo.manifests[digest].locked or locked_tags:
            raise RegistryError(
                f"{repository}@{digest} is locked (locked tags: {locked_tags})",
                status=LOCKED_STATUS,
            )
        self._remove_with_referrers(repository, repo, digest)
        return True

    async def unlock_tag(self, repository: str, tag: str) -> None:
        await self._call("unlock_tag", repository, tag)
        repo = self._existing(repository)
        if tag not in repo.tags:
            raise NotFound(f"{repository}:{tag} not found", status=404)
        repo.tags[tag] = dataclasses.replace(
            repo.tags[tag], delete_enabled=True, write_enabled=True
        )

    async def unlock_manifest(self, repository: str, digest: str) -> None:
        await self._call("unlock_manifest", repository, digest)
        repo = self._existing(repository)
        if digest not in repo.manifests:
            raise NotFound(f"{repository}@{digest} not found", status=404)
        repo.manifests[digest] = dataclasses.replace(
            repo.manifests[digest], delete_enabled=True, write_enabled=True
        )

    async def list_referrers(self, repository: str, digest: str) -> tuple[str, ...]:
        await self._call("list_referrers", repository, digest)
        repo = self._existing(repository)
        return tuple(sorted(d for d, b in repo.bodies.items() if b.subject == digest))

    async def remove_tag(self, repository: str, tag: str) -> RemovedTag | None:
        repo = self._repos.get(repository)
        known = repo.tags.get(tag) if repo else None
        if not await self.delete_tag(repository, tag):
            return None
        return RemovedTag(known.digest if known else None)

    async def tag_state(self, repository: str, tag: str) -> Tag | None:
        await self._call("tag_state", repository, tag)
        repo = self._repos.get(repository)
        return repo.tags.get(tag) if repo else None

    async def manifest_state(self, repository: str, digest: str) -> Manifest | None:
        await self._call("manifest_state", repository, digest)
        repo = self._repos.get(repository)
        manifest = repo.manifests.get(digest) if repo else None
        if repo is None or manifest is None:
            return None
        tags = tuple(sorted(t.name for t in repo.tags.values() if t.digest == digest))
        return dataclasses.replace(manifest, tags=tags)

    async def put_tag(self, repository: str, tag: str, digest: str) -> None:
        await self._call("put_tag", repository, tag)
        repo = self._existing(repository)
        if digest not in repo.manifests:
            raise NotFound(f"{repository}@{digest} not found", status=404)
        old = repo.tags.get(tag)
        repo.tags[tag] = dataclasses.replace(old, digest=digest) if old else Tag(tag, digest, None)

    async def lock_tag(
        self, repository: str, tag: str, *, delete_enabled: bool, write_enabled: bool
    ) -> None:
        await self._call("lock_tag", repository, tag)
        repo = self._existing(repository)
        if tag not in repo.tags:
            raise NotFound(f"{repository}:{tag} not found", status=404)
        repo.tags[tag] = dataclasses.replace(
            repo.tags[tag], delete_enabled=delete_enabled, write_enabled=write_enabled
        )

    async def lock_manifest(
        self, repository: str, digest: str, *, delete_enabled: bool, write_enabled: bool
    ) -> None:
        await self._call("lock_manifest", repository, digest)
        repo = self._existing(repository)
        if digest not in repo.manifests:
            raise NotFound(f"{repository}@{digest} not found", status=404)
        repo.manifests[digest] = dataclasses.replace(
            repo.manifests[digest], delete_enabled=delete_enabled, write_enabled=write_enabled
        )

    async def repository_attributes(self, repository: str) -> RepositoryAttributes:
        await self._call("repository_attributes", repository, "")
        self._existing(repository)
        return self.repository_locks.get(repository, RepositoryAttributes(True, True, True))

    async def lock_repository(
        self, repository: str, *, delete_enabled: bool, write_enabled: bool
    ) -> None:
        await self._call("lock_repository", repository, "")
        self._existing(repository)
        listed = self.repository_locks.get(repository, RepositoryAttributes(True, True, True))
        self.repository_locks[repository] = dataclasses.replace(
            listed, delete_enabled=delete_enabled, write_enabled=write_enabled
        )

    async def close(self) -> None:
        self.closed = True

    # --- internals ---------------------------------------------------------------------

    def _remove_with_referrers(self, repository: str, repo: _Repository, digest: str) -> None:
        """ACR removes a manifest's tags and every manifest whose `subject` it is, recursively."""
        pending = [digest]
        while pending:
            current = pending.pop()
            if repo.manifests.pop(current, None) is None:
                continue
            repo.bodies.pop(current, None)
            for name in [t.name for t in repo.tags.values() if t.digest == current]:
                del repo.tags[name]
            pending.extend(d for d, b in repo.bodies.items() if b.subject == current)
        if not repo.manifests:
            del self._repos[repository]  # ACR drops a repository with nothing left in it

    def _existing(self, repository: str) -> _Repository:
        repo = self._repos.get(repository)
        if repo is None:
            raise NotFound(f"repository {repository!r} not found", status=404)
        return repo

    def _take_failure(self, method: str, repository: str, ref: str) -> _Failure | None:
        for failure in self._failures.get(method, []):
            if failure.repository not in (None, repository) or failure.ref not in (None, ref):
                continue
            if failure.times is not None:
                if failure.times <= 0:
                    continue
                failure.times -= 1
            return failure
        return None

    async def _enter(self, method: str, repository: str, ref: str) -> _Failure | None:
        self.calls[method] += 1
        self.log.append((method, repository, ref))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._take_failure(method, repository, ref)

    def _leave(self) -> None:
        self.in_flight -= 1

    @staticmethod
    def _maybe_fail_listing(failure: _Failure | None, count: int) -> None:
        if failure is not None and count >= failure.after:
            raise failure.error

    async def _call(self, method: str, repository: str, ref: str) -> None:
        try:
            failure = await self._enter(method, repository, ref)
        finally:
            self._leave()
        if failure is not None:
            raise failure.error
