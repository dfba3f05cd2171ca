"""The real azure-containerregistry sync client against the emulator over HTTPS."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from azure.containerregistry import ContainerRegistryClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from acr_emulator.testing import EmulatorServer

AUDIENCE = "https://containerregistry.azure.net"


class StaticAadCredential:
    """Stands in for AAD only: the SDK, its auth policy and HTTP are all real."""

    def __init__(self, token: str = "aad-static-token") -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def client(emu: EmulatorServer, **kwargs: Any) -> ContainerRegistryClient:
    return ContainerRegistryClient(
        emu.endpoint,
        StaticAadCredential(),
        audience=AUDIENCE,
        connection_verify=emu.ca_file,
        retry_total=0,
        **kwargs,
    )


def test_list_repositories_paged(emulator: EmulatorServer) -> None:
    with client(emulator) as c:
        pages = [list(p) for p in c.list_repository_names(results_per_page=1).by_page()]
    assert pages == [["hello-world"], ["team/web"]]


@pytest.mark.parametrize("order", ["timedesc", "timeasc"])
def test_list_tags_in_time_order_with_paging(emulator: EmulatorServer, order: str) -> None:
    with client(emulator) as c:
        tags = list(c.list_tag_properties("hello-world", order_by=order, results_per_page=1))
    times = [t.last_updated_on for t in tags]
    assert sorted(times, reverse=order == "timedesc") == times
    assert {t.name for t in tags} == {"v1", "v2", "latest", "stable"}
    stable = next(t for t in tags if t.name == "stable")
    assert stable.can_delete is False and stable.can_write is False


@pytest.mark.parametrize("order", ["timedesc", "timeasc"])
def test_list_manifests_in_time_order_with_paging(emulator: EmulatorServer, order: str) -> None:
    with client(emulator) as c:
        ms = list(c.list_manifest_properties("hello-world", order_by=order, results_per_page=2))
    assert len(ms) == 4
    times = [m.last_updated_on for m in ms]
    assert sorted(times, reverse=order == "timedesc") == times
    untagged = [m for m in ms if not m.tags]
    assert len(untagged) == 1 and untagged[0].architecture == "amd64"


def test_index_manifest_lists_references(emulator: EmulatorServer) -> None:
    with client(emulator) as c:
        props = c.get_manifest_properties("team/web", "1.0")
        children = (
            {(m.architecture, m.operating_system) for m in props._references or []}
            if hasattr(props, "_references")
            else None
        )
        raw = c.get_manifest("team/web", "1.0")
    doc = raw.manifest
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert {m["platform"]["architecture"] for m in doc["manifests"]} == {"amd64", "arm64"}
    if children is not None:
        assert {c[0] for c in children} == {"amd64", "arm64"}


def test_get_manifest_verifies_digest(emulator: EmulatorServer) -> None:
    with client(emulator) as c:
        result = c.get_manifest("hello-world", "v1")
        props = c.get_tag_properties("hello-world", "v1")
    assert result.digest == props.digest
    assert (
        result.digest
        == "sha256:"
        + hashlib.sha256(
            __import__("json").dumps(result.manifest, separators=(",", ":")).encode()
        ).hexdigest()
    )


def test_corrupt_manifest_fails_digest_check(emulator_factory: Any) -> None:
    emu = emulator_factory(
        {
            "repositories": {
                "r": {
                    "manifests": [
                        {"id": "bad", "corrupt": True, "tags": ["x"]},
                        {"id": "down", "unreadable": True, "tags": ["y"]},
                    ]
                }
            }
        }
    )
    with client(emu) as c:
        with pytest.raises(ValueError, match=r"[Dd]igest"):
            c.get_manifest("r", "x")
        with pytest.raises(HttpResponseError) as err:
            c.get_manifest("r", "y")
    assert err.value.status_code == 500


def test_update_properties_then_delete_is_refused(emulator: EmulatorServer) -> None:
    with client(emulator) as c:
        props = c.update_tag_properties("hello-world", "v1", can_delete=False)
        assert props.can_delete is False
        with pytest.raises(HttpResponseError) as err:
            c.delete_tag("hello-world", "v1")
        assert err.value.status_code == 405
        assert "REGISTRY_DISALLOWED_OPERATION" in str(err.value)
        digest = c.get_tag_properties("hello-world", "v2").digest
        mprops = c.update_manifest_properties("hello-world", digest, can_write=False)
        assert mprops.can_write is False
        with pytest.raises(HttpResponseError):
            c.delete_manifest("hello-world", digest)
    state = emulator.dump()["repositories"]["hello-world"]
    assert "v1" in state["tags"] and digest in state["manifests"]


def test_delete_tag_leaves_manifest_untagged(emulator: EmulatorServer) -> None:
    with client(emulator) as c:
        digest = c.get_tag_properties("hello-world", "v1").digest
        c.delete_tag("hello-world", "v1")
        with pytest.raises(ResourceNotFoundError):
            c.get_tag_properties("hello-world", "v1")
        assert not c.get_manifest_properties("hello-world", digest).tags


def test_delete_manifest_removes_tags_and_referrers(emulator: EmulatorServer) -> None:
    before = emulator.dump()["repositories"]["team/web"]["manifests"]
    index = next(d for d, m in before.items() if m["tags"] == ["1.0"])
    sig = next(d for d, m in before.items() if m["subject"] == index)
    with client(emulator) as c:
        c.delete_manifest("team/web", index)
        names = {m.digest for m in c.list_manifest_properties("team/web")}
    assert index not in names and sig not in names
    assert len(names) == 2  # the children of the index stay, untagged


def test_empty_repository_leaves_catalog(emulator: EmulatorServer) -> None:
    with client(emulator) as c:
        for m in list(c.list_manifest_properties("team/web")):
            c.delete_manifest("team/web", m.digest)  # 404 for cascaded ones is success
        assert list(c.list_repository_names()) == ["hello-world"]
