"""The executor carries out plans exactly: same path dry and real, isolated failures, deadline."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

import purge.executor as executor_module
from purge.executor import execute
from purge.model import (
    OCI_MANIFEST,
    Manifest,
    ManifestBody,
    ManifestDeletion,
    Plan,
    Tag,
    TagDeletion,
)
from purge.registry.protocol import NoAnswer, NotFound, PermissionDenied, RegistryError
from tests.fakes import InMemoryRegistry

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def registry_with(count: int, *, delay: float = 0.0, concurrency: int = 16) -> InMemoryRegistry:
    """`count` images in repository `app`, image i tagged `t{i}`."""
    registry = InMemoryRegistry("test.azurecr.io", delay=delay, concurrency=concurrency)
    for i in range(count):
        registry.add_manifest("app", Manifest(digest(i), OCI_MANIFEST, NOW, size=100))
        registry.add_tag("app", Tag(f"t{i}", digest(i), NOW))
    return registry


def tag_plan(indexes: range | list[int]) -> Plan:
    return Plan(
        "app",
        "r",
        tag_deletions=tuple(TagDeletion(f"t{i}", digest(i), "old") for i in indexes),
    )


async def test_dry_run_and_real_run_report_the_same_items_and_dry_run_changes_nothing() -> None:
    plan = Plan(
        "app",
        "r",
        tag_deletions=(
            TagDeletion("t0", digest(0), "old"),
            TagDeletion("t1", digest(1), "old", removed_with=digest(1)),
        ),
        manifest_deletions=(ManifestDeletion(digest(1), ("t1",), 100, "untagged after purge"),),
    )
    dry_registry, real_registry = registry_with(3), registry_with(3)
    dry = await execute(plan, dry_registry, dry_run=True)
    real = await execute(plan, real_registry, dry_run=False)

    assert [o.deletion for o in dry.done_tags] == [o.deletion for o in real.done_tags]
    assert [o.deletion for o in dry.done_manifests] == [o.deletion for o in real.done_manifests]
    assert {o.status for o in dry.tags} == {"would_delete"}
    assert {o.status for o in real.tags} == {"deleted"}
    assert dry_registry.mutating_calls() == 0
    assert dry_registry.tag_names("app") == {"t0", "t1", "t2"}
    assert real_registry.tag_names("app") == {"t2"}
    assert real_registry.manifest_digests("app") == {digest(0), digest(2)}


async def test_removed_with_items_send_no_delete_and_follow_their_manifest() -> None:
    registry = registry_with(2)
    registry.add_manifest(
        "app",
        Manifest(digest(9), OCI_MANIFEST, NOW),
        body=ManifestBody(digest(9), OCI_MANIFEST, subject=digest(0)),
    )
    plan = Plan(
        "app",
        "r",
        tag_deletions=(TagDeletion("t0", digest(0), "old", removed_with=digest(0)),),
        manifest_deletions=(
            ManifestDeletion(digest(0), ("t0",), 100, "old"),
            ManifestDeletion(digest(9), (), 5, "referrer of deleted", removed_with=digest(0)),
        ),
    )
    result = await execute(plan, registry, dry_run=False)
    # Just before the delete: the referrers it takes along (and theirs, and their tags), then
    # the manifest's own tags; then one delete, which removes the referrer too.
    assert registry.log == [
        ("list_referrers", "app", digest(0)),
        ("manifest_state", "app", digest(9)),
        ("list_referrers", "app", digest(9)),
        ("manifest_state", "app", digest(0)),
        ("delete_manifest", "app", digest(0)),
    ]
    assert [o.status for o in result.tags] == ["deleted"]
    assert [o.status for o in result.manifests] == ["deleted", "deleted"]
    assert registry.manifest_digests("app") == {digest(1)}


#: Digests that read apart in their short form (`digest(n)` all start with zeros).
SIGNATURE, SBOM = "sha256:" + "9" * 64, "sha256:" + "7" * 64


def subject_plan() -> Plan:
    """Untagged image 0 with its signature 9 (removed by the registry with it), both planned."""
    return Plan(
        "app",
        "r",
        manifest_deletions=(
            ManifestDeletion(digest(0), (), 100, "untagged"),
            ManifestDeletion(SIGNATURE, (), 5, "referrer of deleted", removed_with=digest(0)),
        ),
    )


def registry_with_signature(kind: type[InMemoryRegistry] = InMemoryRegistry) -> InMemoryRegistry:
    """Untagged image 0 and its signature, in a registry of `kind`."""
    registry = kind("test.azurecr.io")
    registry.add_manifest("app", Manifest(digest(0), OCI_MANIFEST, NOW, size=100))
    registry.add_manifest(
        "app",
        Manifest(SIGNATURE, OCI_MANIFEST, NOW),
        body=ManifestBody(SIGNATURE, OCI_MANIFEST, subject=digest(0)),
    )
    return registry


async def test_a_referrer_pushed_after_planning_keeps_its_subject() -> None:
    """ACR deletes a subject's referrers with it: one the plan does not know must not go."""
    registry = registry_with_signature()
    registry.add_manifest(
        "app",
        Manifest(SBOM, OCI_MANIFEST, NOW),
        body=ManifestBody(SBOM, OCI_MANIFEST, subject=digest(0)),
    )
    registry.add_tag("app", Tag("sbom", SBOM, NOW))
    result = await execute(subject_plan(), registry, dry_run=False)
    assert registry.mutating_calls() == 0
    assert registry.manifest_digests("app") == {digest(0), SBOM, SIGNATURE}
    assert [o.status for o in result.manifests] == ["kept", "kept"]
    [keep] = [k for k in result.plan.kept if k.ref == digest(0)]
    assert "referrer sha256:777777777777" in keep.reason and "pushed during" in keep.reason
    assert result.errors == ()


async def test_a_tag_pushed_onto_a_planned_referrer_keeps_its_subject() -> None:
    registry = registry_with_signature()
    registry.add_tag("app", Tag("signed-release", SIGNATURE, NOW))
    result = await execute(subject_plan(), registry, dry_run=False)
    assert registry.mutating_calls() == 0
    assert registry.tag_names("app") == {"signed-release"}
    assert [o.status for o in result.manifests] == ["kept", "kept"]
    [keep] = [k for k in result.plan.kept if k.ref == digest(0)]
    assert "tag signed-release pushed onto its referrer sha256:999999999999" in keep.reason


async def test_the_planned_referrers_go_with_their_subject_in_one_delete() -> None:
    registry = registry_with_signature()
    dry = await execute(subject_plan(), registry, dry_run=True)
    assert [o.status for o in dry.manifests] == ["would_delete", "would_delete"]
    result = await execute(subject_plan(), registry, dry_run=False)
    assert [o.status for o in result.manifests] == ["deleted", "deleted"]
    assert registry.calls["delete_manifest"] == 1
    assert registry.manifest_digests("app") == set()


async def test_a_tag_moved_off_a_planned_referrer_is_not_reported_deleted() -> None:
    registry = registry_with_signature()
    registry.add_manifest("app", Manifest(digest(1), OCI_MANIFEST, NOW))
    registry.add_tag("app", Tag("sig", digest(1), NOW))  # planned on the signature, moved since
    plan = replace(
        subject_plan(),
        tag_deletions=(TagDeletion("sig", SIGNATURE, "signature", removed_with=SIGNATURE),),
        manifest_deletions=(
            ManifestDeletion(digest(0), (), 100, "untagged"),
            ManifestDeletion(SIGNATURE, ("sig",), 5, "referrer", removed_with=digest(0)),
        ),
    )
    result = await execute(plan, registry, dry_run=False)
    assert registry.tag_names("app") == {"sig"}
    assert [(o.deletion.tags, o.status) for o in result.manifests] == [
        ((), "deleted"),
        ((), "deleted"),  # the signature went without the tag it no longer had
    ]
    assert [o.status for o in result.tags] == ["kept"]


async def test_an_unreadable_referrer_list_keeps_the_manifest() -> None:
    registry = registry_with_signature()
    registry.fail("list_referrers", ref=digest(0))
    result = await execute(subject_plan(), registry, dry_run=False)
    assert registry.mutating_calls() == 0
    assert registry.manifest_digests("app") == {digest(0), SIGNATURE}
    assert [o.status for o in result.manifests] == ["failed", "failed"]
    assert "re-check before the delete" in result.errors[0].error
    assert result.errors[0].error.endswith("kept")


def throttled() -> RegistryError:
    return RegistryError("deleting manifest: HTTP 429", status=429, retry_after=0.0)


async def test_a_throttled_manifest_delete_is_checked_again_before_it_is_sent_again() -> None:
    registry = registry_with_signature()
    registry.fail("delete_manifest", error=throttled(), times=1)
    result = await execute(subject_plan(), registry, dry_run=False)
    assert [o.status for o in result.manifests] == ["deleted", "deleted"]
    assert result.errors == ()
    sends = [i for i, (method, _, _) in enumerate(registry.log) if method == "delete_manifest"]
    assert len(sends) == 2
    # Both sends come right after the same reads: referrers, the referrer's tags, its tags.
    before = [registry.log[i - 4 : i] for i in sends]
    assert before[0] == before[1]
    assert [method for method, _, _ in before[1]] == [
        "list_referrers",
        "manifest_state",
        "list_referrers",
        "manifest_state",
    ]


class TaggedWhileThrottled(InMemoryRegistry):
    """Answers the first manifest DELETE 429 without acting; meanwhile `release` is pushed."""

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        if self.calls["delete_manifest"] == 0:
            self.calls["delete_manifest"] += 1
            self.add_tag(repository, Tag("release", digest, NOW))
            raise throttled()
        return await super().delete_manifest(repository, digest)


async def test_a_push_between_two_sends_keeps_the_manifest() -> None:
    registry = registry_with_signature(TaggedWhileThrottled)
    result = await execute(subject_plan(), registry, dry_run=False)
    assert registry.calls["delete_manifest"] == 1  # not sent again
    assert registry.manifest_digests("app") == {digest(0), SIGNATURE}
    assert [o.status for o in result.manifests] == ["kept", "kept"]
    [keep] = [k for k in result.plan.kept if k.ref == digest(0)]
    assert "tag release pushed onto it during the purge" in keep.reason
    assert result.errors == ()


async def test_a_refused_or_senseless_delete_answer_is_not_sent_again() -> None:
    registry = registry_with_signature()
    registry.fail("delete_manifest", error=RegistryError("HTTP 400", status=400), times=1)
    result = await execute(subject_plan(), registry, dry_run=False)
    assert registry.calls["delete_manifest"] == 1
    assert [o.status for o in result.manifests] == ["failed", "failed"]


async def test_a_manifest_delete_is_sent_at_most_four_times() -> None:
    registry = registry_with_signature()
    registry.fail("delete_manifest", error=throttled(), times=10)
    result = await execute(subject_plan(), registry, dry_run=False)
    assert registry.calls["delete_manifest"] == executor_module.CHECKED_DELETE_SENDS == 4
    assert registry.calls["manifest_state"] == 2 * 4 + 4  # checks, and a read-back per send
    assert registry.manifest_digests("app") == {digest(0), SIGNATURE}
    assert [o.status for o in result.manifests] == ["failed", "failed"]
    assert "HTTP 429" in result.errors[0].error


async def test_a_lost_connection_is_sent_again_but_not_past_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = registry_with_signature()
    registry.fail("delete_manifest", error=NoAnswer("connection reset"), times=1)
    monkeypatch.setattr(executor_module, "time", _DeleteCountClock(registry, "delete_manifest"))
    result = await execute(subject_plan(), registry, dry_run=False, deadline=1.0)
    assert registry.calls["delete_manifest"] == 1
    assert "not sent again: the run's time budget is spent" in result.errors[0].error
    assert registry.manifest_digests("app") == {digest(0), SIGNATURE}


class SlowFirstReads(InMemoryRegistry):
    """Its first `slow` referrer reads take 1.5 s each (as behind a throttle), then none.

    The time is a virtual clock (`monotonic`), which stands in for the executor's: a fresh
    check takes no time by construction, however loaded the machine is.
    """

    slow = 0
    now = 0.0

    async def list_referrers(self, repository: str, digest: str) -> tuple[str, ...]:
        if self.slow > 0:
            self.slow -= 1
            self.now += 1.5
        return await super().list_referrers(repository, digest)

    def monotonic(self) -> float:
        return self.now


def slow_registry(monkeypatch: pytest.MonkeyPatch, slow: int) -> InMemoryRegistry:
    registry = registry_with_signature(SlowFirstReads)
    assert isinstance(registry, SlowFirstReads)
    registry.slow = slow
    monkeypatch.setattr(executor_module, "time", registry)
    return registry


async def test_a_slow_check_is_done_again_before_the_delete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reads that waited out a throttle may be stale by the time the check ends."""
    registry = slow_registry(monkeypatch, slow=1)
    result = await execute(subject_plan(), registry, dry_run=False)
    assert [o.status for o in result.manifests] == ["deleted", "deleted"]
    methods = [method for method, _, _ in registry.log]
    assert methods.count("manifest_state") == 2 * 2  # two rounds: the slow one, a fresh one
    assert methods[-1] == "delete_manifest" and methods.count("delete_manifest") == 1


async def test_nothing_is_deleted_on_checks_that_stay_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = slow_registry(monkeypatch, slow=100)
    result = await execute(subject_plan(), registry, dry_run=False)
    assert registry.mutating_calls() == 0
    assert [o.status for o in result.manifests] == ["failed", "failed"]
    assert "took over 1s 3 times" in result.errors[0].error


async def test_what_goes_with_a_manifest_already_gone_is_reported_already_gone() -> None:
    registry = InMemoryRegistry("test.azurecr.io")  # manifest 0 and its signature: deleted
    registry.add_manifest("app", Manifest(digest(1), OCI_MANIFEST, NOW))  # meanwhile
    plan = replace(
        subject_plan(),
        tag_deletions=(TagDeletion("t0", digest(0), "old", removed_with=digest(0)),),
        manifest_deletions=(
            ManifestDeletion(digest(0), ("t0",), 100, "old"),
            ManifestDeletion(SIGNATURE, (), 5, "referrer", removed_with=digest(0)),
        ),
    )
    result = await execute(plan, registry, dry_run=False)
    assert registry.mutating_calls() == 0
    assert [(o.status, o.already_gone) for o in result.manifests] == [
        ("deleted", True),
        ("deleted", True),
    ]
    assert [(o.status, o.already_gone) for o in result.tags] == [("deleted", True)]


def locked_signature_plan() -> Plan:
    """Image 0 and its locked signature: the signature is unlocked and deleted on its own."""
    return replace(
        subject_plan(),
        manifest_deletions=(
            ManifestDeletion(digest(0), (), 100, "untagged"),
            ManifestDeletion(SIGNATURE, (), 5, "referrer of deleted", True, None, (False, True)),
        ),
    )


async def test_a_referrer_gone_with_its_repository_is_already_gone() -> None:
    """Its subject's delete took it along, and ACR dropped the emptied repository: the
    referrers read answers 404 for the repository. The manifest read says it is gone: done."""
    registry = registry_with_signature()
    await registry.delete_manifest("app", digest(0))  # a concurrent delete, as in a run
    assert registry.manifest_digests("app") == set()  # and the fake's repository is gone
    result = await execute(locked_signature_plan(), registry, dry_run=False)
    assert result.errors == ()
    assert [(o.status, o.already_gone) for o in result.manifests] == [
        ("deleted", True),
        ("deleted", True),
    ]


async def test_a_referrers_404_for_a_manifest_still_there_keeps_it() -> None:
    registry = registry_with_signature()
    registry.fail("list_referrers", error=NotFound("no repository", status=404))
    result = await execute(locked_signature_plan(), registry, dry_run=False)
    assert registry.mutating_calls() == 0
    assert registry.manifest_digests("app") == {digest(0), SIGNATURE}
    assert [o.status for o in result.manifests] == ["failed", "failed"]
    assert all("re-check before the delete" in e.error for e in result.errors)


async def test_removed_with_items_fail_when_their_manifest_fails() -> None:
    registry = registry_with(1)
    registry.fail("delete_manifest", error=PermissionDenied("denied", status=403))
    plan = Plan(
        "app",
        "r",
        tag_deletions=(TagDeletion("t0", digest(0), "old", removed_with=digest(0)),),
        manifest_deletions=(ManifestDeletion(digest(0), ("t0",), 100, "old"),),
    )
    result = await execute(plan, registry, dry_run=False)
    assert [o.status for o in result.tags] == ["failed"]
    assert [o.status for o in result.manifests] == ["failed"]
    assert len(result.errors) == 1
    assert "AcrDelete" in result.errors[0].error
    assert result.errors[0].ref == digest(0)


async def test_removed_with_a_manifest_outside_the_plan_is_an_error_and_no_request() -> None:
    registry = registry_with(1)
    plan = Plan(
        "app", "r", tag_deletions=(TagDeletion("t0", digest(0), "x", removed_with=digest(7)),)
    )
    result = await execute(plan, registry, dry_run=False)
    assert registry.log == []
    assert result.tags[0].status == "failed"
    assert "does not delete" in result.errors[0].error


async def test_one_failure_does_not_stop_the_others() -> None:
    registry = registry_with(5)
    registry.fail("delete_tag", ref="t2")
    result = await execute(tag_plan(range(5)), registry, dry_run=False)
    assert [o.status for o in result.tags] == ["deleted", "deleted", "failed", "deleted", "deleted"]
    assert [(e.repository, e.ref) for e in result.errors] == [("app", "t2")]
    assert registry.tag_names("app") == {"t2"}
    assert result.complete


async def test_not_found_on_delete_counts_as_done() -> None:
    registry = registry_with(1)
    result = await execute(tag_plan([0, 5]), registry, dry_run=False)
    assert [o.status for o in result.tags] == ["deleted", "deleted"]
    assert [o.already_gone for o in result.tags] == [False, True]
    assert result.errors == ()


async def test_unlocks_only_what_it_deletes_just_before_deleting() -> None:
    registry = registry_with(3)
    registry.add_tag("app", Tag("locked-tag", digest(0), NOW, write_enabled=False))
    registry.add_tag("app", Tag("locked-keep", digest(2), NOW, delete_enabled=False))
    registry.add_manifest("app", Manifest(digest(8), OCI_MANIFEST, NOW, delete_enabled=False))
    plan = Plan(
        "app",
        "r",
        tag_deletions=(
            TagDeletion("t0", digest(0), "old", removed_with=digest(0)),
            TagDeletion("locked-tag", digest(0), "old", unlock=True, removed_with=digest(0)),
            TagDeletion("t1", digest(1), "old"),
        ),
        manifest_deletions=(
            ManifestDeletion(digest(0), ("t0", "locked-tag"), 1, "old"),
            ManifestDeletion(digest(8), (), 1, "untagged", unlock=True),
        ),
    )
    dry = await execute(plan, registry, dry_run=True)
    # a dry run sends no write, only the reads a real run makes before each manifest delete
    assert registry.mutating_calls() == 0 and len(dry.done_manifests) == 2
    assert [(m, ref) for m, _, ref in registry.log] == [
        ("list_referrers", digest(0)),
        ("manifest_state", digest(0)),
        ("list_referrers", digest(8)),
        ("manifest_state", digest(8)),
    ]
    result = await execute(plan, registry, dry_run=False)
    assert result.errors == ()
    calls = [(method, ref) for method, _, ref in registry.log]
    assert calls.index(("unlock_tag", "locked-tag")) < calls.index(("delete_manifest", digest(0)))
    assert calls.index(("unlock_manifest", digest(8))) < calls.index(("delete_manifest", digest(8)))
    assert registry.calls["unlock_tag"] == 1 and registry.calls["unlock_manifest"] == 1
    assert registry.lock_state("app", "locked-keep") == (False, True)  # never touched
    assert registry.manifest_digests("app") == {digest(1), digest(2)}
    assert registry.tag_names("app") == {"t2", "locked-keep"}


async def test_failed_unlock_skips_the_delete() -> None:
    registry = registry_with(1)
    registry.add_manifest("app", Manifest(digest(8), OCI_MANIFEST, NOW, delete_enabled=False))
    registry.fail("unlock_manifest", error=PermissionDenied("forbidden", status=403))
    plan = Plan(
        "app", "r", manifest_deletions=(ManifestDeletion(digest(8), (), 1, "x", unlock=True),)
    )
    result = await execute(plan, registry, dry_run=False)
    assert registry.calls["delete_manifest"] == 0
    assert result.manifests[0].status == "failed"
    assert "unlock" in result.errors[0].error


async def test_deletions_run_concurrently_within_the_registry_limit() -> None:
    registry = registry_with(12, delay=0.02, concurrency=4)
    await execute(tag_plan(range(12)), registry, dry_run=False)
    # Four calls in flight at once, never more: faster than one at a time, without timing it.
    assert registry.max_in_flight == 4
    assert registry.tag_names("app") == set()


class _DeleteCountClock:
    """Stands in for the executor's `time`: the clock reads the number of deletes started.

    The deadline then falls between two deletes by construction, not by racing the wall clock
    (0.05 s sleeps against a 0.07 s deadline failed CI on a loaded machine).
    """

    def __init__(self, registry: InMemoryRegistry, method: str = "delete_tag") -> None:
        self.registry = registry
        self.method = method

    def monotonic(self) -> float:
        return float(self.registry.calls[self.method])


async def test_deadline_stops_new_deletions_and_marks_incomplete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = registry_with(10, delay=0.01, concurrency=2)
    monkeypatch.setattr(executor_module, "time", _DeleteCountClock(registry))
    deadline = 4.0  # past once four deletes have started: two waves of two
    result = await execute(tag_plan(range(10)), registry, dry_run=False, deadline=deadline)
    statuses = [o.status for o in result.tags]
    assert not result.complete
    assert statuses.count("deleted") == 4  # two waves started before the deadline
    assert statuses.count("not_started") == 6
    assert len(registry.tag_names("app")) == 6


async def test_deadline_already_passed_in_dry_run_also_starts_nothing() -> None:
    registry = registry_with(2)
    result = await execute(tag_plan(range(2)), registry, dry_run=True, deadline=0.0)
    assert [o.status for o in result.tags] == ["not_started", "not_started"]
    assert not result.complete


def index_plan() -> Plan:
    """Index 5 (tag t5) over children 3 and 4, all three deleted by the plan."""
    return Plan(
        "app",
        "r",
        children={digest(5): (digest(3), digest(4))},
        tag_deletions=(TagDeletion("t5", digest(5), "old", removed_with=digest(5)),),
        manifest_deletions=(
            ManifestDeletion(digest(3), ("t3",), 1, "child of deleted index"),
            ManifestDeletion(digest(4), ("t4",), 1, "child of deleted index"),
            ManifestDeletion(digest(5), ("t5",), 1, "old"),
        ),
    )


async def test_an_index_is_deleted_before_its_children() -> None:
    registry = registry_with(6)
    result = await execute(index_plan(), registry, dry_run=False)
    deletes = [ref for method, _, ref in registry.log if method == "delete_manifest"]
    assert deletes[0] == digest(5) and set(deletes[1:]) == {digest(3), digest(4)}
    assert {o.status for o in result.manifests} == {"deleted"}


async def test_children_are_kept_when_their_index_fails() -> None:
    registry = registry_with(6)
    registry.fail("delete_manifest", ref=digest(5))
    result = await execute(index_plan(), registry, dry_run=False)
    assert registry.calls["delete_manifest"] == 1
    assert {digest(3), digest(4), digest(5)} <= registry.manifest_digests("app")
    assert [o.status for o in result.manifests] == ["failed", "failed", "failed"]
    assert sum("its index" in e.error for e in result.errors) == 2


async def test_a_refused_delete_stops_sending_the_same_refused_request_in_that_repository() -> None:
    """An identity without AcrDelete is refused for every item: ask once, not once per item."""
    registry = registry_with(20, concurrency=1)
    registry.fail("delete_tag", error=PermissionDenied("denied", status=403), times=100)
    result = await execute(tag_plan(range(20)), registry, dry_run=False)
    assert {o.status for o in result.tags} == {"failed"}
    assert registry.tag_names("app") == {f"t{i}" for i in range(20)}
    assert registry.calls["delete_tag"] == 1
    [first, summary] = result.errors
    assert "AcrDelete" in first.error
    assert summary.ref == "*" and summary.error.startswith("19 more deletions")
    assert "AcrDelete" in summary.error
