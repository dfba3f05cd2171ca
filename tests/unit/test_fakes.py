"""InMemoryRegistry keeps ACR's delete semantics, so engine unit tests mean something."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from purge.model import OCI_INDEX, OCI_MANIFEST, Manifest, ManifestBody, Tag
from purge.registry.protocol import ManifestUnreadable, PermissionDenied, RegistryError
from tests.fakes import LOCKED_STATUS, InMemoryRegistry

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
IMAGE = "sha256:" + "a" * 64
SIGNATURE = "sha256:" + "b" * 64
SIG_OF_SIG = "sha256:" + "c" * 64
OTHER = "sha256:" + "d" * 64


def build() -> InMemoryRegistry:
    registry = InMemoryRegistry("test.azurecr.io")
    registry.add_manifest("app", Manifest(IMAGE, OCI_MANIFEST, NOW - timedelta(days=9), size=10))
    registry.add_manifest(
        "app",
        Manifest(SIGNATURE, OCI_MANIFEST, NOW, size=1),
        body=ManifestBody(SIGNATURE, OCI_MANIFEST, subject=IMAGE),
    )
    registry.add_manifest(
        "app",
        Manifest(SIG_OF_SIG, OCI_MANIFEST, NOW, size=1),
        body=ManifestBody(SIG_OF_SIG, OCI_MANIFEST, subject=SIGNATURE),
    )
    registry.add_manifest(
        "app", Manifest(OTHER, OCI_INDEX, NOW), body=ManifestBody(OTHER, OCI_INDEX)
    )
    registry.add_tag("app", Tag("v1", IMAGE, NOW - timedelta(days=9)))
    registry.add_tag("app", Tag("latest", IMAGE, NOW - timedelta(days=1)))
    registry.add_tag("app", Tag("other", OTHER, NOW))
    return registry


async def test_lists_tags_newest_first_and_manifest_tags_from_current_state() -> None:
    registry = build()
    tags = [t.name async for t in registry.list_tags("app")]
    assert tags == ["other", "latest", "v1"]
    manifests = {m.digest: m async for m in registry.list_manifests("app")}
    assert manifests[IMAGE].tags == ("latest", "v1")
    assert manifests[SIGNATURE].tags == ()
    assert [r async for r in registry.list_repositories()] == ["app"]


async def test_deleting_a_manifest_removes_its_tags_and_referrers_recursively() -> None:
    registry = build()
    assert await registry.delete_manifest("app", IMAGE) is True
    assert registry.manifest_digests("app") == {OTHER}
    assert registry.tag_names("app") == {"other"}


async def test_delete_of_missing_item_returns_false() -> None:
    registry = build()
    assert await registry.delete_tag("app", "nope") is False
    assert await registry.delete_manifest("app", "sha256:" + "e" * 64) is False
    assert await registry.delete_tag("no-such-repo", "v1") is False
    assert registry.calls["delete_tag"] == 2


async def test_locked_items_refuse_deletes_until_unlocked() -> None:
    registry = build()
    registry.add_tag("app", Tag("pinned", OTHER, NOW, delete_enabled=False))
    with pytest.raises(RegistryError) as caught:
        await registry.delete_tag("app", "pinned")
    assert caught.value.status == LOCKED_STATUS
    with pytest.raises(RegistryError):  # a manifest with a locked tag cannot go either
        await registry.delete_manifest("app", OTHER)
    assert "pinned" in registry.tag_names("app")
    await registry.unlock_tag("app", "pinned")
    assert registry.lock_state("app", "pinned") == (True, True)
    assert await registry.delete_manifest("app", OTHER) is True


async def test_deleting_the_last_manifest_drops_the_repository() -> None:
    registry = InMemoryRegistry()
    registry.add_manifest("solo", Manifest(IMAGE, OCI_MANIFEST, NOW))
    await registry.delete_manifest("solo", IMAGE)
    assert [r async for r in registry.list_repositories()] == []


async def test_injected_failures_hit_only_the_chosen_calls() -> None:
    registry = build()
    registry.fail("delete_tag", ref="v1", error=PermissionDenied("no AcrDelete", status=403))
    with pytest.raises(PermissionDenied):
        await registry.delete_tag("app", "v1")
    assert await registry.delete_tag("app", "latest") is True
    registry.fail("get_manifest", times=1)
    with pytest.raises(RegistryError):
        await registry.get_manifest("app", SIGNATURE)
    assert (await registry.get_manifest("app", SIGNATURE)).subject == IMAGE
    with pytest.raises(ManifestUnreadable):
        await registry.get_manifest("app", IMAGE)  # no body stored


async def test_partial_listing_yields_some_items_then_fails() -> None:
    registry = build()
    registry.fail("list_tags", repository="app", after=2)
    seen: list[str] = []
    with pytest.raises(RegistryError):
        async for tag in registry.list_tags("app"):
            seen.append(tag.name)
    assert seen == ["other", "latest"]


def test_fail_rejects_unknown_method_names() -> None:
    with pytest.raises(ValueError, match="no method 'delete_tags'"):
        InMemoryRegistry().fail("delete_tags")


def test_tags_must_point_at_known_manifests() -> None:
    with pytest.raises(ValueError, match="unknown manifest"):
        InMemoryRegistry().add_tag("app", Tag("v1", IMAGE, NOW))
