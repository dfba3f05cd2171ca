"""Repository locks in the planner and the executor (issue 16, section 5), on the fake."""

from __future__ import annotations

from datetime import datetime, timezone

from purge.executor import execute
from purge.model import DOCKER_MANIFEST, Keep, Manifest, ManifestDeletion, Plan, Tag, TagDeletion
from purge.planner import apply_repository_lock
from purge.registry.protocol import RepositoryAttributes
from tests.fakes import InMemoryRegistry
from tests.unit.test_planner import make_rule

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
D = "sha256:" + "a" * 64
PLAN = Plan(
    "app",
    "r",
    tag_deletions=(TagDeletion("v1", D, "old", removed_with=D),),
    manifest_deletions=(ManifestDeletion(D, ("v1",), 10, "old"),),
)


def test_a_locked_repository_keeps_every_planned_deletion() -> None:
    plan = apply_repository_lock(
        PLAN, make_rule("app:.*"), delete_enabled=False, write_enabled=True, list_enabled=True
    )
    assert plan.deletion_count == 0
    assert set(plan.kept) == {
        Keep("tag", "v1", D, "repository locked"),
        Keep("manifest", D, D, "repository locked"),
    }


def test_a_hidden_repository_is_never_purged_even_with_include_locked() -> None:
    rule = make_rule("app:.*", include_locked=True)
    plan = apply_repository_lock(
        PLAN, rule, delete_enabled=True, write_enabled=True, list_enabled=False
    )
    assert plan.deletion_count == 0
    assert {k.reason for k in plan.kept} == {
        "repository hidden from the catalog (listEnabled false)"
    }


def test_include_locked_plans_the_unlock_with_the_listed_attributes() -> None:
    rule = make_rule("app:.*", include_locked=True)
    plan = apply_repository_lock(
        PLAN, rule, delete_enabled=False, write_enabled=True, list_enabled=True
    )
    assert plan.deletion_count == 2 and plan.unlock_repository == (False, True)
    unlocked = apply_repository_lock(
        PLAN, rule, delete_enabled=True, write_enabled=True, list_enabled=True
    )
    assert unlocked is PLAN


async def test_the_executor_unlocks_the_repository_and_locks_it_again() -> None:
    registry = InMemoryRegistry()
    registry.add_manifest("app", Manifest(D, DOCKER_MANIFEST, NOW))
    registry.add_tag("app", Tag("v1", D, NOW))
    registry.add_manifest("app", Manifest("sha256:" + "b" * 64, DOCKER_MANIFEST, NOW))
    registry.repository_locks["app"] = RepositoryAttributes(False, False, True)
    plan = Plan(**{**PLAN.__dict__, "unlock_repository": (False, False)})
    dry = await execute(plan, registry, dry_run=True)
    assert registry.mutating_calls() == 0 and len(dry.done_manifests) == 1
    result = await execute(plan, registry, dry_run=False)
    assert result.errors == () and len(result.done_manifests) == 1
    calls = [method for method, _, _ in registry.log]
    assert calls.count("lock_repository") == 2
    assert calls.index("lock_repository") < calls.index("delete_manifest")
    assert calls[-1] == "lock_repository"
    assert registry.repository_locks["app"] == RepositoryAttributes(False, False, True)
