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
from dataclasses import dataclass
from typing import Literal

from purge.model import ManifestDeletion, Plan, TagDeletion
from purge.registry.protocol import NotFound, PermissionDenied, Registry

Status = Literal["deleted", "would_delete", "failed", "not_started"]


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
        self._removed_with: dict[str, str | None] | None = None
        #: action -> the first refusal (401/403) of it in this repository. A missing role is
        #: missing for every item: later items starting with that action are not sent.
        self.denied: dict[str, str] = {}
        self.not_attempted = 0

    def removed_with(self) -> dict[str, str | None]:
        """Manifest digest -> the digest whose delete removes it; built once per plan."""
        if self._removed_with is None:
            self._removed_with = {d.digest: d.removed_with for d in self.plan.manifest_deletions}
        return self._removed_with

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def error(self, ref: str, exc: BaseException, action: str) -> None:
        self.errors.append(ItemError(self.plan.repository, ref, describe_failure(exc, action)))

    async def attempt(
        self, ref: str, steps: Sequence[tuple[str, Callable[[], Awaitable[object]]]]
    ) -> tuple[Status, bool]:
        """Run `steps` (unlocks, then the delete) in one registry slot; the last is the delete.

        In a dry run no step is called. Returns (status, already_gone).
        """
        async with self.registry.slot():
            if self.past_deadline():
                self.complete = False
                return "not_started", False
            if self.dry_run:
                return "would_delete", False
            if steps[0][0] in self.denied:
                self.not_attempted += 1
                return "failed", False
            for index, (action, call) in enumerate(steps):
                is_delete = index == len(steps) - 1
                try:
                    answer = await call()
                except NotFound:
                    if is_delete:
                        return "deleted", True
                    continue  # unlocking something already gone: the delete will say 404 too
                except PermissionDenied as exc:
                    self.denied.setdefault(action, describe_failure(exc, action))
                    self.error(ref, exc, action)
                    return "failed", False
                except Exception as exc:  # one item's failure must not stop the others
                    self.error(ref, exc, action)
                    return "failed", False
                if is_delete:
                    return "deleted", answer is False
            raise AssertionError("steps must end with a delete")  # pragma: no cover


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
    """
    run = _Execution(plan, registry, dry_run, deadline)
    repo = plan.repository

    async def delete_tag(deletion: TagDeletion) -> TagOutcome:
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        if deletion.unlock:
            steps.append(("unlock", lambda: registry.unlock_tag(repo, deletion.tag)))
        steps.append(("delete", lambda: registry.delete_tag(repo, deletion.tag)))
        status, gone = await run.attempt(deletion.tag, steps)
        return TagOutcome(deletion, status, gone)

    standalone_tags = [d for d in plan.tag_deletions if d.removed_with is None]
    tag_outcomes = {
        id(o.deletion): o for o in await asyncio.gather(*map(delete_tag, standalone_tags))
    }

    # Locked tags that go with a manifest must be unlocked before that manifest's delete.
    tags_removed_with: dict[str, list[TagDeletion]] = {}
    for deletion in plan.tag_deletions:
        if deletion.removed_with is not None:
            tags_removed_with.setdefault(deletion.removed_with, []).append(deletion)

    async def delete_manifest(deletion: ManifestDeletion) -> None:
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        for tag in tags_removed_with.get(deletion.digest, []):
            if tag.unlock:
                steps.append(("unlock", _bind(registry.unlock_tag, repo, tag.tag)))
        if deletion.unlock:
            steps.append(("unlock", lambda: registry.unlock_manifest(repo, deletion.digest)))
        steps.append(("delete", lambda: registry.delete_manifest(repo, deletion.digest)))
        run.manifest_status[deletion.digest] = await run.attempt(deletion.digest, steps)

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
    return ExecutionResult(
        plan, dry_run, tuple(tags), tuple(manifest_outcomes), tuple(run.errors), run.complete
    )


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
            if not undone:
                go.append(d)
            elif any(run.manifest_status[p][0] == "not_started" for p in undone):
                run.manifest_status[d.digest] = ("not_started", False)
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


def _bind(
    method: Callable[[str, str], Awaitable[object]], repository: str, ref: str
) -> Callable[[], Awaitable[object]]:
    return lambda: method(repository, ref)


def _own_outcome(run: _Execution, deletion: ManifestDeletion) -> ManifestOutcome:
    status, gone = run.manifest_status[deletion.digest]
    return ManifestOutcome(deletion, status, gone)


def _root_status(run: _Execution, digest: str, ref: str) -> Status:
    """Status of the manifest whose delete removes `digest`, following removed_with chains."""
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
            return "failed"
        seen.add(digest)
        digest = parent
    return run.manifest_status[digest][0]


def _manifest_outcome(run: _Execution, deletion: ManifestDeletion) -> ManifestOutcome:
    assert deletion.removed_with is not None
    return ManifestOutcome(deletion, _root_status(run, deletion.removed_with, deletion.digest))


def _tag_outcome(run: _Execution, deletion: TagDeletion) -> TagOutcome:
    assert deletion.removed_with is not None
    return TagOutcome(deletion, _root_status(run, deletion.removed_with, deletion.tag))
