"""Every Registry method of the ACR client over HTTPS to the emulator, real SDK underneath."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from acr_emulator.testing import EmulatorServer
from purge.config.settings import Connection
from purge.model import OCI_INDEX
from purge.registry.acr import AcrRegistry
from purge.registry.protocol import ManifestUnreadable, NotFound, PermissionDenied


def connect(emu: EmulatorServer, **kwargs: Any) -> AcrRegistry:
    conn = Connection(
        login_server=emu.login_server,
        allowed_hosts=("127.0.0.1",),
        username=kwargs.pop("username", emu.username),
        password=kwargs.pop("password", emu.password),
        ca_file=emu.ca_file,
    )
    return AcrRegistry(conn, **kwargs)


def many_tags(n: int) -> dict[str, Any]:
    manifests = [
        {"id": f"m{i}", "kind": "image", "updated": f"-{i + 1}d", "tags": [f"t{i}"]}
        for i in range(n)
    ]
    one = {"manifests": [{"id": "x", "kind": "image"}]}
    return {"repositories": {"app": {"manifests": manifests}, "b": one, "c": one}}


def requests(emu: EmulatorServer, method: str, fragment: str) -> list[dict[str, Any]]:
    return [e for e in emu.request_log() if e["method"] == method and fragment in e["path"]]


async def test_listings_follow_pages_and_keep_order(emulator_factory: Any) -> None:
    emu = emulator_factory(scenario=many_tags(7))
    async with connect(emu, page_size=3) as reg:
        repos = [r async for r in reg.list_repositories()]
        tags = [t async for t in reg.list_tags("app")]
        manifests = [m async for m in reg.list_manifests("app")]
    assert repos == ["app", "b", "c"]
    assert [t.name for t in tags] == [f"t{i}" for i in range(7)]  # newest first
    times = [t.last_updated for t in tags]
    assert None not in times and times == sorted(times, reverse=True)  # type: ignore[type-var]
    assert len(manifests) == 7 and len({m.digest for m in manifests}) == 7
    assert len(requests(emu, "GET", "/_tags")) == 3  # 3 + 3 + 1
    assert len(requests(emu, "GET", "/_manifests")) == 3
    assert all("n=3" in e["query"] for e in requests(emu, "GET", "/_tags"))
    assert "orderby=timedesc" in requests(emu, "GET", "/_tags")[0]["query"]


async def test_default_page_size_is_acr_maximum(emulator: EmulatorServer) -> None:
    async with connect(emulator) as reg:
        _ = [t async for t in reg.list_tags("hello-world")]
    assert "n=1000" in requests(emulator, "GET", "/_tags")[0]["query"]


async def test_manifest_listing_maps_media_types_and_locks_without_references(
    emulator: EmulatorServer,
) -> None:
    async with connect(emulator) as reg:
        web = {m.digest: m async for m in reg.list_manifests("team/web")}
        hello = [t async for t in reg.list_tags("hello-world")]
    state = emulator.dump()["repositories"]["team/web"]["manifests"]
    index = next(m for m in web.values() if m.is_index)
    assert index.media_type == OCI_INDEX and index.tags == ("1.0",)
    # As on ACR, list items carry no `references`: an index's children come from its body.
    assert index.references is None
    for digest, m in web.items():
        assert m.media_type == state[digest]["mediaType"]
        assert m.config_media_type == state[digest]["configMediaType"]
    assert {t.name: t.locked for t in hello} == {
        "v1": False, "v2": False, "latest": False, "stable": True,
    }  # fmt: skip


async def test_get_manifest_verifies_and_parses(emulator: EmulatorServer) -> None:
    state = emulator.dump()["repositories"]["team/web"]["manifests"]
    index = next(d for d, s in state.items() if s["mediaType"] == OCI_INDEX)
    sig = next(d for d, s in state.items() if s["subject"])
    async with connect(emulator) as reg:
        body = await reg.get_manifest("team/web", index)
        ref = await reg.get_manifest("team/web", sig)
        with pytest.raises(ManifestUnreadable, match="not found"):
            await reg.get_manifest("team/web", "sha256:" + "0" * 64)
    assert set(body.children) == {d for d, s in state.items() if s["architecture"]}
    assert ref.subject == index


async def test_get_manifest_rejects_a_body_that_does_not_match_its_digest(
    emulator_factory: Any,
) -> None:
    scenario = {
        "repositories": {"r": {"manifests": [{"id": "x", "kind": "image", "corrupt": True}]}}
    }
    emu = emulator_factory(scenario=scenario)
    digest = next(iter(emu.dump()["repositories"]["r"]["manifests"]))
    async with connect(emu) as reg:
        with pytest.raises(ManifestUnreadable, match="digest"):
            await reg.get_manifest("r", digest)


async def test_deletes_report_whether_something_was_deleted(emulator: EmulatorServer) -> None:
    state = emulator.dump()["repositories"]["hello-world"]
    old = next(d for d, s in state["manifests"].items() if not s["tags"])
    async with connect(emulator) as reg:
        assert await reg.delete_tag("hello-world", "v1") is True
        assert await reg.delete_tag("hello-world", "v1") is False
        assert await reg.delete_manifest("hello-world", old) is True
        assert await reg.delete_manifest("hello-world", old) is False
    after = emulator.dump()["repositories"]["hello-world"]
    assert "v1" not in after["tags"] and old not in after["manifests"]
    assert {"v2", "latest", "stable"} <= set(after["tags"])


async def test_unlock_patches_tag_and_manifest(emulator: EmulatorServer) -> None:
    digest = emulator.dump()["repositories"]["hello-world"]["tags"]["stable"]["digest"]
    async with connect(emulator) as reg:
        await reg.unlock_tag("hello-world", "stable")
        await reg.unlock_manifest("hello-world", digest)
    state = emulator.dump()["repositories"]["hello-world"]
    for attrs in (state["tags"]["stable"]["changeableAttributes"],
                  state["manifests"][digest]["changeableAttributes"]):  # fmt: skip
        assert attrs["deleteEnabled"] and attrs["writeEnabled"]
    patches = requests(emulator, "PATCH", "/acr/v1/hello-world/")
    assert len(patches) == 2


async def test_unknown_repository_is_not_found(emulator: EmulatorServer) -> None:
    async with connect(emulator) as reg:
        with pytest.raises(NotFound):
            _ = [t async for t in reg.list_tags("nope")]


async def test_bad_password_is_a_permission_error_naming_the_role(
    emulator: EmulatorServer,
) -> None:
    async with connect(emulator, password="wrong") as reg:
        with pytest.raises(PermissionDenied, match="AcrPull") as info:
            _ = [r async for r in reg.list_repositories()]
    assert "wrong" not in str(info.value)
    assert emulator.dump()["repositories"]  # nothing changed


async def test_5xx_and_dropped_connections_are_retried(emulator: EmulatorServer) -> None:
    emulator.inject_fault(method="DELETE", path_regex="_tags/v1$", status=503, count=2)
    emulator.inject_fault(method="DELETE", path_regex="_tags/v2$", drop=True, status=None, count=1)
    async with connect(emulator) as reg:
        assert await reg.delete_tag("hello-world", "v1") is True
        # the drop happened before the delete was applied; the retry deletes it
        assert await reg.delete_tag("hello-world", "v2") is True
    tags = emulator.dump()["repositories"]["hello-world"]["tags"]
    assert "v1" not in tags and "v2" not in tags
    statuses = [e["status"] for e in requests(emulator, "DELETE", "_tags/v1")]
    assert statuses == [503, 503, 202]
    assert [e["status"] for e in requests(emulator, "DELETE", "_tags/v2")] == [-1, 202]


async def test_persistent_5xx_fails_that_item_only(emulator: EmulatorServer) -> None:
    emulator.inject_fault(method="DELETE", path_regex="_tags/v1$", status=500, count=50)
    async with connect(emulator) as reg:
        with pytest.raises(Exception, match="HTTP 500") as info:
            await reg.delete_tag("hello-world", "v1")
        assert not isinstance(info.value, PermissionDenied)
        assert await reg.delete_tag("hello-world", "v2") is True
    assert 2 <= len(requests(emulator, "DELETE", "_tags/v1")) <= 6  # bounded retries


async def test_429_is_retried_and_slows_the_shared_limit(emulator: EmulatorServer) -> None:
    emulator.inject_fault(method="DELETE", path_regex="_tags/v1$", status=429, count=2)
    async with connect(emulator) as reg:
        before = reg.limiter.controller.limit
        assert await reg.delete_tag("hello-world", "v1") is True
        assert reg.limiter.stats.throttled == 2
        assert reg.limiter.controller.limit < before
    assert [e["status"] for e in requests(emulator, "DELETE", "_tags/v1")] == [429, 429, 202]


async def test_a_small_rate_limit_is_respected(emulator_factory: Any) -> None:
    emu = emulator_factory(scenario=many_tags(30))
    emu.set_rate_limit(10)
    async with connect(emu, max_concurrency=16) as reg:
        results = await asyncio.gather(*(reg.delete_tag("app", f"t{i}") for i in range(30)))
        stats = reg.limiter.stats
    assert all(results)
    assert emu.dump()["repositories"]["app"]["tags"] == {}
    log = emu.request_log()
    # every tag was deleted exactly once (a 429 is not applied, so its retry is the real delete)
    assert sum(1 for e in log if e["method"] == "DELETE" and e["status"] == 202) == 30
    throttled = sum(1 for e in log if e["status"] == 429)
    print(
        f"\n30 deletes at 10 rps: {len(log)} requests, {throttled} answered 429, "
        f"peak in flight {stats.peak_in_flight}, paused {stats.paused_seconds:.1f}s"
    )
    assert throttled <= 10  # the remaining-calls header paces us before ACR has to refuse
    assert stats.peak_in_flight <= 16
