"""The executor: carries out a Plan, and nothing else (the planner decided everything).

Dry run and real run take exactly the same path; only the final unlock/delete call is skipped in
a dry run, so a dry run reports what a real run would do. Each item's failure is recorded and
isolated. Items that the registry removes by itself (a manifest's tags, a subject's referrers:
`removed_with`) get no request: they count as done only when that manifest's delete succeeded.
After the deadline no new deletion starts; in-flight ones finish and the result is incomplete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from purge.model import Keep, ManifestDeletion, Plan, TagDeletion, short_digest
from purge.registry.protocol import (
    NotFound,
    PermissionDenied,
    Registry,
    RegistryError,
    is_passing,
)

#: kept: the registry changed under the run (a tag pushed onto it, moved away or put back), so
#: it was not deleted; unknown: the delete's answer was lost and reading it back failed too.
Status = Literal["deleted", "would_delete", "failed", "not_started", "kept", "unknown"]


@dataclass(frozen=True)
class ItemError:
    repository: str
    ref: str
    error: str


@dataclass(frozen=True)
class TagOutcome:
    deletion: TagDeletion
    status: Status
    #: The registry answered 404: someone else deleted it first (counts as done).
    already_gone: bool = False


@dataclass(frozen=True)
class ManifestOutcome:
    deletion: ManifestDeletion
    status: Status
    already_gone: bool = False


@dataclass(frozen=True)
class ExecutionResult:
    plan: Plan
    dry_run: bool
    tags: tuple[TagOutcome, ...]
    manifests: tuple[ManifestOutcome, ...]
    errors: tuple[ItemError, ...]
    #: False when the deadline stopped deletions from starting.
    complete: bool

    @property
    def done_tags(self) -> tuple[TagOutcome, ...]:
        return tuple(o for o in self.tags if o.status in ("deleted", "would_delete"))

    @property
    def done_manifests(self) -> tuple[ManifestOutcome, ...]:
        return tuple(o for o in self.manifests if o.status in ("deleted", "would_delete"))


def describe_failure(exc: BaseException, action: str) -> str:
    """A one-line error; a permission error names the role the identity is missing."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, PermissionDenied):
        role = {"delete": "AcrDelete", "unlock": "AcrPush (to change locks)"}.get(action, "AcrPull")
        if role.split()[0] not in text:
            text = f"{text} - the identity needs the {role} role on this registry or repository"
        return f"permission denied ({action}): {text}"
    status = getattr(exc, "status", None)
    return f"{action} failed{f' (HTTP {status})' if status else ''}: {text}"


@dataclass(frozen=True)
class _Unlock:
    """An unlock PATCH before a delete, and the PATCH that puts the listed locks back."""

    ref: str
    call: Callable[[], Awaitable[object]]
    restore: Callable[[], Awaitable[object]]


#: What a check before a delete or the delete itself decided: (status, already gone).
_Decision = tuple[Status, bool]

#: Sends of one checked (manifest) delete at most, each right after its check.
CHECKED_DELETE_SENDS = 4
#: Longest wait before sending a checked delete again (a Retry-After beyond it is cut).
MAX_RESEND_PAUSE = 30.0
#: A check that took longer (its reads waited on a 429's Retry-After) is stale: done again,
#: CHECK_ROUNDS times at most; then the item is kept. No delete follows a slower check.
FRESH_CHECK_SECONDS = 1.0
CHECK_ROUNDS = 3


class _Execution:
    """State of one plan's execution."""

    def __init__(
        self,
        plan: Plan,
        registry: Registry,
        dry_run: bool,
        deadline: float | None,
    ) -> None:
        self.plan = plan
        self.registry = registry
        self.dry_run = dry_run
        self.deadline = deadline
        self.errors: list[ItemError] = []
        self.complete = True
        #: Outcome of each manifest that got a request of its own: digest -> (status, gone).
        self.manifest_status: dict[str, tuple[Status, bool]] = {}
        #: Tags a manifest had when re-read just before its delete: the ones its delete removed.
        self.tags_at_delete: dict[str, tuple[str, ...]] = {}
        #: Items the run did not delete because the registry changed under it, with the reason.
        self.kept: list[Keep] = []
        #: Tag deletions whose answer corrected the plan (the digest the registry named).
        self.corrected: dict[int, TagDeletion] = {}
        self._removed_with: dict[str, str | None] | None = None
        self._planned: dict[str, ManifestDeletion] | None = None
        #: action -> the first refusal (401/403) of it in this repository. A missing role is
        #: missing for every item: later items starting with that action are not sent.
        self.denied: dict[str, str] = {}
        self.not_attempted = 0

    def removed_with(self) -> dict[str, str | None]:
        """Manifest digest -> the digest whose delete removes it; built once per plan."""
        if self._removed_with is None:
            self._removed_with = {d.digest: d.removed_with for d in self.plan.manifest_deletions}
        return self._removed_with

    async def cascade_change(self, digest: str) -> str | None:
        """Why deleting `digest` now would remove more than the plan says, or None.

        ACR deletes a manifest's referrers (signatures, SBOMs) with it, and theirs in turn,
        tags and all. A referrer pushed since the listing, or a tag pushed onto a referrer the
        plan deletes, would go without a word: read the referrers just before the delete
        (the OCI referrers API answers an empty list, not 404, for a manifest without any).
        """
        planned = self.planned_manifests()
        seen, subjects = {digest}, [digest]
        while subjects:
            subject = subjects.pop()
            for referrer in await self.registry.list_referrers(self.plan.repository, subject):
                if referrer in seen:
                    continue
                seen.add(referrer)
                deletion = planned.get(referrer)
                if deletion is None:
                    return (
                        f"referrer {short_digest(referrer)} of {short_digest(subject)}, which the "
                        "plan does not delete, was pushed during the purge"
                    )
                now = await self.registry.manifest_state(self.plan.repository, referrer)
                if now is None:
                    continue
                pushed = sorted(set(now.tags) - set(deletion.tags))
                if pushed:
                    return (
                        f"tag {', '.join(pushed)} pushed onto its referrer "
                        f"{short_digest(referrer)} during the purge"
                    )
                self.tags_at_delete[referrer] = tuple(sorted(now.tags))
                subjects.append(referrer)
        return None

    def planned_manifests(self) -> dict[str, ManifestDeletion]:
        """Digest -> its planned deletion; built once per plan."""
        if self._planned is None:
            self._planned = {d.digest: d for d in self.plan.manifest_deletions}
        return self._planned

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def error(self, ref: str, exc: BaseException, action: str) -> None:
        self.errors.append(ItemError(self.plan.repository, ref, describe_failure(exc, action)))

    async def attempt(
        self,
        ref: str,
        unlocks: Sequence[_Unlock],
        delete: Callable[[], Awaitable[_Decision]],
        read_back: Callable[[], Awaitable[bool]],
        check: Callable[[], Awaitable[_Decision | None]] | None = None,
    ) -> _Decision:
        """Check, unlock, delete in one registry slot; a dry run stops after the check.

        `check` re-reads the item just before its delete and may decide instead (kept: it
        changed; deleted: already gone). A delete that fails without a refusal is read back
        (`read_back`: is it gone?), since a lost answer may hide a delete the registry did.
        A checked delete that failed for a passing reason (429, 408, 5xx, a lost connection)
        and did not happen is sent again, each time right after its check: the registry client
        never resends it by itself, seconds later and unchecked. Whatever was unlocked and not
        deleted gets its listed locks back.
        """
        async with self.registry.slot():
            if self.past_deadline():
                self.complete = False
                return "not_started", False
            unlocked: list[_Unlock] = []
            for send in range(1, CHECKED_DELETE_SENDS + 1):
                if check is not None:  # a read: the dry run does it too, to report the same
                    decided = await self._checked(ref, check, unlocked)
                    if decided is not None:
                        return decided
                if self.dry_run:
                    return "would_delete", False
                if send == 1:
                    if ("unlock" if unlocks else "delete") in self.denied:
                        self.not_attempted += 1
                        return "failed", False
                    if not await self._unlock(ref, unlocks, unlocked):
                        return "failed", False
                try:
                    return await delete()
                except NotFound:
                    return "deleted", True
                except PermissionDenied as exc:
                    self.denied.setdefault("delete", describe_failure(exc, "delete"))
                    await self._fail(ref, describe_failure(exc, "delete"), unlocked)
                    return "failed", False
                except Exception as exc:  # one item's failure must not stop the others
                    failure, passing = describe_failure(exc, "delete"), is_passing(exc)
                    pause = exc.retry_after if isinstance(exc, RegistryError) else None
                try:
                    gone = await read_back()
                except Exception as exc:
                    await self._fail(
                        ref,
                        f"delete outcome unknown: {failure}; reading it back failed: "
                        f"{describe_failure(exc, 'read')}",
                        unlocked,
                    )
                    return "unknown", False
                if gone:  # the registry acted; only its answer was lost
                    return "deleted", False
                if check is None or not passing or send == CHECKED_DELETE_SENDS:
                    break
                if self.past_deadline():
                    failure += "; not sent again: the run's time budget is spent"
                    break
                await asyncio.sleep(min(pause if pause is not None else send, MAX_RESEND_PAUSE))
            await self._fail(ref, failure, unlocked)
            return "failed", False

    async def _checked(
        self, ref: str, check: Callable[[], Awaitable[_Decision | None]], unlocked: list[_Unlock]
    ) -> _Decision | None:
        """The check's decision (as the dry run reports it), or None to go on and delete.

        A check whose reads took longer than FRESH_CHECK_SECONDS (one waited out a throttle)
        is done again: what it read first may have changed since. Nothing is deleted on a
        check that slow: after CHECK_ROUNDS of them the item is kept, with an error.
        """
        try:
            for _ in range(CHECK_ROUNDS):
                started = time.monotonic()
                decided = await check()
                fresh = time.monotonic() - started <= FRESH_CHECK_SECONDS
                if decided is not None or fresh:
                    break
        except Exception as exc:
            text = describe_failure(exc, "re-check before the delete")
            await self._fail(ref, f"{text}; kept", unlocked)
            return "failed", False
        if decided is None and not fresh:
            text = (
                f"not deleted: its check just before the delete took over "
                f"{FRESH_CHECK_SECONDS:g}s {CHECK_ROUNDS} times (the registry is slowing its "
                "reads); kept, the next run decides"
            )
            await self._fail(ref, text, unlocked)
            return "failed", False
        if decided is None:
            return None
        status, gone = decided
        if status == "kept" and unlocked:  # changed between two sends: locks back, no error
            notes = await self._relock(unlocked)
            if any("stays unlocked" in note for note in notes):
                self.errors.append(ItemError(self.plan.repository, ref, "; ".join(notes)))
        return ("would_delete" if self.dry_run and status == "deleted" else status), gone

    async def _unlock(self, ref: str, unlocks: Sequence[_Unlock], done: list[_Unlock]) -> bool:
        """Unlock what the delete needs, adding each to `done`; False (recorded) on a failure."""
        for unlock in unlocks:
            try:
                await unlock.call()
            except NotFound:
                continue  # unlocking something already gone: the delete will say 404 too
            except Exception as exc:
                if isinstance(exc, PermissionDenied):
                    self.denied.setdefault("unlock", describe_failure(exc, "unlock"))
                await self._fail(ref, describe_failure(exc, "unlock"), done)
                return False
            done.append(unlock)
        return True

    async def _fail(self, ref: str, text: str, unlocked: Sequence[_Unlock]) -> None:
        """Record a failure; first put back the locks of what was unlocked for nothing."""
        notes = await self._relock(unlocked)
        suffix = f"; {'; '.join(notes)}" if notes else ""
        self.errors.append(ItemError(self.plan.repository, ref, text + suffix))

    @staticmethod
    async def _relock(unlocked: Sequence[_Unlock]) -> list[str]:
        """Put back the listed locks of `unlocked`; a note for each, saying how it went."""
        notes = []
        for unlock in unlocked:
            try:
                await unlock.restore()
                notes.append(f"lock restored on {unlock.ref}")
            except NotFound:
                continue
            except Exception as exc:
                failure = describe_failure(exc, "unlock")
                notes.append(f"relocking {unlock.ref} failed ({failure}): it stays unlocked")
        return notes


async def execute(
    plan: Plan,
    registry: Registry,
    *,
    dry_run: bool,
    deadline: float | None = None,
) -> ExecutionResult:
    """Apply `plan`: standalone tag deletions first, then manifest deletions, each concurrently.

    `deadline` is a `time.monotonic()` value, checked when an item gets its registry slot (the
    registry's one limit bounds concurrent requests across repositories). An index goes before
    the children the plan also deletes (`plan.children`), and those children stay when the
    index's delete fails: a half-deleted multi-arch image must never be left behind.

    The result's plan is `plan` as the registry answered it: a tag's digest as the registry
    named it, a manifest's tags as re-read just before its delete, and in `kept` what changed
    under the run and so was not deleted.
    """
    run = _Execution(plan, registry, dry_run, deadline)
    repo = plan.repository
    repository_locks = plan.unlock_repository if plan.deletion_count and not dry_run else None
    if repository_locks is not None:
        try:
            await registry.lock_repository(repo, delete_enabled=True, write_enabled=True)
        except Exception as exc:
            error = ItemError(
                repo,
                "repository",
                f"{describe_failure(exc, 'unlock')}; nothing deleted in this locked repository",
            )
            return ExecutionResult(
                plan,
                dry_run,
                tuple(TagOutcome(d, "failed") for d in plan.tag_deletions),
                tuple(ManifestOutcome(d, "failed") for d in plan.manifest_deletions),
                (error,),
                True,
            )
    try:
        return await _execute(run)
    finally:
        if repository_locks is not None:
            delete_enabled, write_enabled = repository_locks
            try:
                await registry.lock_repository(
                    repo, delete_enabled=delete_enabled, write_enabled=write_enabled
                )
            except Exception as exc:
                run.errors.append(
                    ItemError(
                        repo,
                        "repository",
                        f"locking the repository again failed ({describe_failure(exc, 'unlock')})"
                        ": it is left unlocked",
                    )
                )


def _tag_unlock(registry: Registry, repo: str, deletion: TagDeletion) -> _Unlock:
    delete_enabled, write_enabled = deletion.locks
    return _Unlock(
        deletion.tag,
        lambda: registry.unlock_tag(repo, deletion.tag),
        lambda: registry.lock_tag(
            repo, deletion.tag, delete_enabled=delete_enabled, write_enabled=write_enabled
        ),
    )


async def _execute(run: _Execution) -> ExecutionResult:
    plan, registry, repo = run.plan, run.registry, run.plan.repository

    async def delete_tag(deletion: TagDeletion) -> TagOutcome:
        async def delete() -> _Decision:
            removed = await registry.remove_tag(repo, deletion.tag)
            if removed is None:
                return "deleted", True
            if removed.digest is None or removed.digest == deletion.digest:
                return "deleted", False
            return await put_back(deletion, removed.digest)

        async def read_back() -> bool:
            return await registry.tag_state(repo, deletion.tag) is None

        unlocks = [_tag_unlock(registry, repo, deletion)] if deletion.unlock else []
        status, gone = await run.attempt(deletion.tag, unlocks, delete, read_back)
        return TagOutcome(run.corrected.get(id(deletion), deletion), status, gone)

    async def put_back(deletion: TagDeletion, digest: str) -> _Decision:
        """The tag was moved to `digest` meanwhile and the delete removed it there: re-tag."""
        moved = f"moved to {short_digest(digest)} during the purge; the delete removed it there"
        try:
            await registry.put_tag(repo, deletion.tag, digest)
        except Exception as exc:
            run.corrected[id(deletion)] = replace(deletion, digest=digest, reason=moved)
            run.errors.append(
                ItemError(
                    repo,
                    deletion.tag,
                    f"tag {moved}, and putting it back failed "
                    f"({describe_failure(exc, 'put back')}): push {deletion.tag} again "
                    f"onto {digest}",
                )
            )
            return "deleted", False
        run.kept.append(Keep("tag", deletion.tag, digest, f"{moved} and it was put back at once"))
        return "kept", False

    standalone_tags = [d for d in plan.tag_deletions if d.removed_with is None]
    outcomes = await asyncio.gather(*map(delete_tag, standalone_tags))
    tag_outcomes = {id(d): o for d, o in zip(standalone_tags, outcomes, strict=True)}

    # Locked tags that go with a manifest must be unlocked before that manifest's delete.
    tags_removed_with: dict[str, list[TagDeletion]] = {}
    for deletion in plan.tag_deletions:
        if deletion.removed_with is not None:
            tags_removed_with.setdefault(deletion.removed_with, []).append(deletion)

    async def delete_manifest(deletion: ManifestDeletion) -> None:
        digest = deletion.digest

        async def check() -> _Decision | None:
            try:
                cascade = await run.cascade_change(digest)
            except NotFound:
                # A 404 from the referrers read: the repository went (ACR drops one with
                # nothing left, as when a concurrent delete took this manifest along as a
                # referrer). Read the manifest itself; only its absence counts as done.
                if await registry.manifest_state(repo, digest) is None:
                    return "deleted", True
                raise
            if cascade is not None:
                run.kept.append(
                    Keep(
                        "manifest", digest, digest, f"{cascade}: kept (the next run decides again)"
                    )
                )
                return "kept", False
            now = await registry.manifest_state(repo, digest)
            if now is None:
                return "deleted", True
            pushed = sorted(set(now.tags) - set(deletion.tags))
            if pushed:
                run.kept.append(
                    Keep(
                        "manifest",
                        digest,
                        digest,
                        f"tag {', '.join(pushed)} pushed onto it during the purge: kept "
                        "(the next run decides again)",
                    )
                )
                return "kept", False
            run.tags_at_delete[digest] = tuple(sorted(now.tags))
            return None

        async def delete() -> _Decision:
            return "deleted", await registry.delete_manifest(repo, digest) is False

        async def read_back() -> bool:
            return await registry.manifest_state(repo, digest) is None

        unlocks = [
            _tag_unlock(registry, repo, tag)
            for tag in tags_removed_with.get(digest, [])
            if tag.unlock
        ]
        if deletion.unlock:
            delete_enabled, write_enabled = deletion.locks
            unlocks.append(
                _Unlock(
                    short_digest(digest),
                    lambda: registry.unlock_manifest(repo, digest),
                    lambda: registry.lock_manifest(
                        repo, digest, delete_enabled=delete_enabled, write_enabled=write_enabled
                    ),
                )
            )
        run.manifest_status[digest] = await run.attempt(digest, unlocks, delete, read_back, check)

    own_manifests = [d for d in plan.manifest_deletions if d.removed_with is None]
    await _delete_parents_first(run, own_manifests, plan.children, delete_manifest)

    if run.not_attempted:
        refusals = "; ".join(sorted(set(run.denied.values())))
        run.errors.append(
            ItemError(
                repo,
                "*",
                f"{run.not_attempted} more deletions in this repository not attempted after "
                f"{refusals}",
            )
        )
    manifest_outcomes = [
        _manifest_outcome(run, d) if d.removed_with is not None else _own_outcome(run, d)
        for d in plan.manifest_deletions
    ]
    tags = [
        tag_outcomes[id(d)] if d.removed_with is None else _tag_outcome(run, d)
        for d in plan.tag_deletions
    ]
    answered = replace(
        plan,
        tag_deletions=tuple(o.deletion for o in tags),
        manifest_deletions=tuple(o.deletion for o in manifest_outcomes),
        kept=plan.kept + tuple(run.kept),
    )
    return ExecutionResult(
        answered, run.dry_run, tuple(tags), tuple(manifest_outcomes), tuple(run.errors),
        run.complete,
    )  # fmt: skip


async def _delete_parents_first(
    run: _Execution,
    deletions: Sequence[ManifestDeletion],
    children: Mapping[str, Sequence[str]],
    delete: Callable[[ManifestDeletion], Awaitable[None]],
) -> None:
    """Delete in waves: a manifest starts only once every planned index above it is done."""
    planned = {d.digest for d in deletions}
    parents: dict[str, set[str]] = {}
    for parent, kids in children.items():
        if parent in planned:
            for kid in kids:
                if kid in planned and kid != parent:
                    parents.setdefault(kid, set()).add(parent)
    pending = list(deletions)
    while pending:
        ready = [
            d for d in pending if all(p in run.manifest_status for p in parents.get(d.digest, ()))
        ]
        if not ready:  # a reference cycle cannot come from a registry: refuse, keep them all
            for d in pending:
                run.manifest_status[d.digest] = ("failed", False)
                run.errors.append(
                    ItemError(run.plan.repository, d.digest, "not deleted: reference cycle")
                )
            return
        go: list[ManifestDeletion] = []
        for d in ready:
            undone = sorted(
                p
                for p in parents.get(d.digest, ())
                if run.manifest_status[p][0] not in ("deleted", "would_delete")
            )
            statuses = {run.manifest_status[p][0] for p in undone}
            if not undone:
                go.append(d)
            elif "not_started" in statuses:
                run.manifest_status[d.digest] = ("not_started", False)
            elif statuses == {"kept"}:  # its index changed under the run and stays
                run.manifest_status[d.digest] = ("kept", False)
                reason = (
                    f"child of {short_digest(undone[0])}, which is kept (changed during the purge)"
                )
                run.kept.append(Keep("manifest", d.digest, d.digest, reason))
            elif "unknown" in statuses:
                run.manifest_status[d.digest] = ("failed", False)
                run.errors.append(
                    ItemError(
                        run.plan.repository,
                        d.digest,
                        f"not deleted: kept because the outcome of its index {undone[0]}'s "
                        "delete is unknown",
                    )
                )
            else:
                run.manifest_status[d.digest] = ("failed", False)
                run.errors.append(
                    ItemError(
                        run.plan.repository,
                        d.digest,
                        f"not deleted: kept because its index {undone[0]} was not deleted",
                    )
                )
        await asyncio.gather(*map(delete, go))
        done = {d.digest for d in ready}
        pending = [d for d in pending if d.digest not in done]


def _own_outcome(run: _Execution, deletion: ManifestDeletion) -> ManifestOutcome:
    status, gone = run.manifest_status[deletion.digest]
    return ManifestOutcome(_as_reread(run, deletion), status, gone)


def _as_reread(run: _Execution, deletion: ManifestDeletion) -> ManifestDeletion:
    """`deletion` with the tags its manifest had when re-read before the delete: those went."""
    removed = run.tags_at_delete.get(deletion.digest)
    if removed is not None and removed != deletion.tags:
        return replace(deletion, tags=removed)
    return deletion


def _root_status(run: _Execution, digest: str, ref: str) -> _Decision:
    """(status, already gone) of the manifest whose delete removes `digest`, following
    removed_with chains: what went with a manifest someone else deleted was gone already."""
    removed_with = run.removed_with()
    seen: set[str] = set()
    while digest not in run.manifest_status:
        parent = removed_with.get(digest)
        if parent is None or digest in seen:
            run.errors.append(
                ItemError(
                    run.plan.repository,
                    ref,
                    f"not deleted: the plan removes it with {digest}, "
                    "which the plan does not delete",
                )
            )
            return "failed", False
        seen.add(digest)
        digest = parent
    return run.manifest_status[digest]


def _manifest_outcome(run: _Execution, deletion: ManifestDeletion) -> ManifestOutcome:
    assert deletion.removed_with is not None
    status, gone = _root_status(run, deletion.removed_with, deletion.digest)
    return ManifestOutcome(_as_reread(run, deletion), status, gone)


def _tag_outcome(run: _Execution, deletion: TagDeletion) -> TagOutcome:
    assert deletion.removed_with is not None
    status, gone = _root_status(run, deletion.removed_with, deletion.tag)
    removed = run.tags_at_delete.get(deletion.removed_with)
    if status == "deleted" and removed is not None and deletion.tag not in removed:
        reason = (
            f"moved away from {short_digest(deletion.removed_with)} during the purge: not deleted"
        )
        run.kept.append(Keep("tag", deletion.tag, deletion.digest, reason))
        return TagOutcome(deletion, "kept")
    if status == "kept":
        reason = (
            f"its manifest {short_digest(deletion.removed_with)} is kept (changed during the purge)"
        )
        run.kept.append(Keep("tag", deletion.tag, deletion.digest, reason))
    return TagOutcome(deletion, status, gone)
