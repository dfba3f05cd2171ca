"""run_purge over InMemoryRegistry with the real planner: the run's failure boundaries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from purge.config.rules import Rule, make_rule
from purge.config.settings import Config, Connection
from purge.model import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    Manifest,
    ManifestBody,
    Tag,
)
from purge.registry.protocol import PermissionDenied
from purge.service import UnknownRule, run_purge, select_rules
from tests.fakes import InMemoryRegistry

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=40)
NEW = NOW - timedelta(hours=1)


def digest(repo: str, n: int) -> str:
    return f"sha256:{abs(hash((repo, n))) % 16**64:064x}"


def build(repositories: tuple[str, ...] = ("app", "web", "tools"), *, delay: float = 0.0):
    """Each repository: old tags v0..v2 (one image each), a recent `latest`, an old untagged."""
    registry = InMemoryRegistry("test.azurecr.io", delay=delay)
    for repo in repositories:
        for n in range(3):
            registry.add_manifest(repo, Manifest(digest(repo, n), DOCKER_MANIFEST, OLD, size=1000))
            registry.add_tag(repo, Tag(f"v{n}", digest(repo, n), OLD))
        registry.add_manifest(repo, Manifest(digest(repo, 3), DOCKER_MANIFEST, NEW, size=1000))
        registry.add_tag(repo, Tag("latest", digest(repo, 3), NEW))
        registry.add_manifest(repo, Manifest(digest(repo, 4), DOCKER_MANIFEST, OLD, size=7))
    return registry


def config(*rules: Rule, dry_run: bool = False) -> Config:
    return Config(Connection("test.azurecr.io"), rules=rules, dry_run=dry_run)


def old_tags_rule(name: str = "old", **kwargs: object) -> Rule:
    return make_rule(name, filters=["(app|web):v.*"], ago="30d", untagged=True, **kwargs)  # type: ignore[arg-type]


def deleted_refs(report_dict: dict[str, object]) -> set[str]:
    deleted = report_dict["deleted"]
    assert isinstance(deleted, dict)
    return {f"{t['repository']}:{t['tag']}" for t in deleted["tags"]} | {
        f"{m['repository']}@{m['digest']}" for m in deleted["manifests"]
    }


async def test_dry_run_reports_exactly_what_the_real_run_deletes() -> None:
    dry_registry, real_registry = build(), build()
    dry = await run_purge(config(old_tags_rule(), dry_run=True), now=NOW, registry=dry_registry)
    real = await run_purge(config(old_tags_rule()), now=NOW, registry=real_registry)

    assert dry_registry.mutating_calls() == 0
    assert dry_registry.tag_names("app") == {"v0", "v1", "v2", "latest"}
    assert deleted_refs(dry.to_dict()) == deleted_refs(real.to_dict())
    assert {f"app:v{n}" for n in range(3)} <= deleted_refs(real.to_dict())
    assert real_registry.tag_names("app") == {"latest"}
    assert real_registry.tag_names("tools") == {"v0", "v1", "v2", "latest"}  # not matched
    assert real_registry.manifest_digests("app") == {digest("app", 3)}
    assert dry.dry_run and not real.dry_run
    assert real.complete and real.errors == []


async def test_a_failed_listing_deletes_nothing_in_that_repository_only() -> None:
    registry = build()
    registry.fail("list_manifests", repository="web", after=1)  # partial listing
    report = await run_purge(config(old_tags_rule()), now=NOW, registry=registry)
    assert registry.tag_names("web") == {"v0", "v1", "v2", "latest"}
    assert registry.tag_names("app") == {"latest"}
    [error] = report.errors
    assert error["repository"] == "web" and "nothing deleted" in error["error"]


async def test_a_failed_catalog_deletes_nothing() -> None:
    registry = build()
    registry.fail("list_repositories", error=PermissionDenied("unauthorized", status=401))
    report = await run_purge(config(old_tags_rule()), now=NOW, registry=registry)
    assert registry.calls["list_tags"] == 0 and registry.mutating_calls() == 0
    assert "AcrPull" in report.errors[0]["error"]


async def test_delete_permission_errors_name_the_role_and_do_not_stop_the_run() -> None:
    registry = build()
    registry.fail("delete_manifest", repository="app", error=PermissionDenied("no", status=403))
    report = await run_purge(config(old_tags_rule()), now=NOW, registry=registry)
    assert report.errors and all("AcrDelete" in e["error"] for e in report.errors)
    assert registry.tag_names("web") == {"latest"}


async def test_max_deletions_blocks_the_rule_but_not_the_next_one() -> None:
    registry = build()
    guarded = old_tags_rule("guarded", max_deletions=2)
    tools = make_rule("tools", filters=["tools:v0"], ago="30d")
    report = await run_purge(config(guarded, tools), now=NOW, registry=registry)
    assert registry.tag_names("app") == {"v0", "v1", "v2", "latest"}
    assert registry.tag_names("tools") == {"v1", "v2", "latest"}
    rules = {r["name"]: r for r in report.to_dict()["rules"]}
    assert "more than --max-deletions 2" in rules["guarded"]["blocked"]
    assert rules["tools"]["blocked"] is None and rules["tools"]["tagsDeleted"] == 1
    assert any(e["ref"] == "rule:guarded" for e in report.errors)


async def test_max_deletions_within_the_limit_deletes() -> None:
    registry = build()
    report = await run_purge(
        config(old_tags_rule("guarded", max_deletions="100%")), now=NOW, registry=registry
    )
    assert report.errors == []
    assert registry.tag_names("app") == {"latest"}


async def test_rule_dry_run_overrides_a_real_run() -> None:
    registry = build()
    report = await run_purge(
        config(old_tags_rule(dry_run=True)), dry_run=False, now=NOW, registry=registry
    )
    assert registry.mutating_calls() == 0
    assert report.to_dict()["totals"]["tagsDeleted"] == 6
    assert all(t["dryRun"] for t in report.deleted_tags)


async def test_time_budget_leaves_the_run_incomplete_and_a_second_run_continues() -> None:
    repos = tuple(f"r{i}" for i in range(20))
    # Calls take 50 ms and a repository with deletions costs 4 reads before its first delete:
    # the first wave of repositories (8 at a time) deletes within the 0.35 s budget, the
    # second does not; long enough that a loaded machine's scheduling does not decide it.
    registry = build(repos, delay=0.05)
    rule = make_rule("all", filters=["r.*:v.*"], ago="30d")
    first = await run_purge(config(rule), budget_seconds=0.35, now=NOW, registry=registry)
    assert not first.complete and "time budget" in (first.incomplete_reason or "")
    left = sum(len(registry.tag_names(r)) for r in repos)
    assert 20 < left < 80
    second = await run_purge(config(rule), now=NOW, registry=registry)
    assert second.complete
    assert all(registry.tag_names(r) == {"latest"} for r in repos)


async def test_unreadable_manifest_body_keeps_the_manifest() -> None:
    registry = InMemoryRegistry("test.azurecr.io")
    unknown = "sha256:" + "e" * 64
    registry.add_manifest("app", Manifest(unknown, OCI_MANIFEST, OLD, config_media_type="x/y"))
    registry.fail("get_manifest")
    rule = make_rule("untagged", filters=["app:.*"], ago="1d", untagged_only=True)
    report = await run_purge(config(rule), now=NOW, registry=registry)
    assert registry.manifest_digests("app") == {unknown}
    assert registry.calls["get_manifest"] == 1
    assert report.to_dict()["totals"]["manifestsDeleted"] == 0


async def test_a_referrer_goes_with_its_subject_and_no_request_is_sent_for_it() -> None:
    registry = InMemoryRegistry("test.azurecr.io")
    image, signature = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    registry.add_manifest("app", Manifest(image, DOCKER_MANIFEST, OLD, size=50))
    registry.add_tag("app", Tag("v1", image, OLD))
    registry.add_manifest(
        "app",
        Manifest(signature, OCI_MANIFEST, OLD, size=3, config_media_type="application/x-sig"),
        body=ManifestBody(signature, OCI_MANIFEST, subject=image),
    )
    rule = make_rule("old", filters=["app:.*"], ago="30d", untagged=True)
    await run_purge(config(rule), now=NOW, registry=registry)
    assert [r async for r in registry.list_repositories()] == []
    deletes = [ref for method, _, ref in registry.log if method.startswith("delete")]
    assert signature not in deletes


async def test_untrusted_host_is_refused_before_any_request() -> None:
    untrusted = Config(Connection("evil.example.com"), rules=(old_tags_rule(),))
    with pytest.raises(ValueError, match=r"evil\.example\.com"):
        await run_purge(untrusted, now=NOW)


def test_select_rules_names_unknown_rules_and_suggests() -> None:
    cfg = config(old_tags_rule("nightly"), old_tags_rule("weekly"))
    assert [r.name for r in select_rules(cfg, None)] == ["nightly", "weekly"]
    assert [r.name for r in select_rules(cfg, ["weekly"])] == ["weekly"]
    with pytest.raises(UnknownRule) as caught:
        select_rules(cfg, ["nighty", "weekly"])
    message = str(caught.value)
    assert "'nighty'" in message and "did you mean 'nightly'" in message
    assert "'weekly'" in message  # the known rules are listed


async def test_a_multi_arch_index_goes_before_its_children() -> None:
    registry = InMemoryRegistry("test.azurecr.io")
    index, amd, arm = ("sha256:" + c * 64 for c in "789")
    for child in (amd, arm):
        registry.add_manifest("app", Manifest(child, DOCKER_MANIFEST, OLD, size=100))
    registry.add_manifest(
        "app", Manifest(index, DOCKER_MANIFEST_LIST, OLD, size=10, references=(amd, arm))
    )
    registry.add_tag("app", Tag("v1", index, OLD))
    rule = make_rule("old", filters=["app:.*"], ago="30d", untagged=True)
    report = await run_purge(config(rule), now=NOW, registry=registry)
    deletes = [ref for method, _, ref in registry.log if method == "delete_manifest"]
    assert deletes[0] == index and set(deletes) == {index, amd, arm}
    assert report.to_dict()["totals"]["bytesFreed"] == 210
