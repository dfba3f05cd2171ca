"""The real azure-containerregistry aio client, with a real ManagedIdentityCredential."""

from __future__ import annotations

import pytest
from azure.containerregistry.aio import ContainerRegistryClient
from azure.core.exceptions import HttpResponseError
from azure.identity.aio import ManagedIdentityCredential

from acr_emulator.testing import EmulatorServer
from tests.fixtures.identity_endpoint import ManagedIdentityEndpoint

AUDIENCE = "https://containerregistry.azure.net"


def sdk_client(
    emulator: EmulatorServer, cred: ManagedIdentityCredential
) -> ContainerRegistryClient:
    """The real aio client, trusting the emulator's CA; no retries, so tests see first answers."""
    return ContainerRegistryClient(
        emulator.endpoint,
        cred,
        audience=AUDIENCE,
        connection_verify=emulator.ca_file,
        retry_total=0,
    )


async def test_managed_identity_challenge_exchange_token_flow(
    emulator: EmulatorServer, identity_endpoint: ManagedIdentityEndpoint
) -> None:
    async with (
        ManagedIdentityCredential() as cred,
        sdk_client(emulator, cred) as c,
    ):
        names = [n async for n in c.list_repository_names()]
        tags = [t.name async for t in c.list_tag_properties("hello-world", order_by="timeasc")]
        await c.delete_tag("hello-world", "v1")
    assert names == ["hello-world", "team/web"]
    assert tags == ["stable", "v1", "latest", "v2"] or tags == ["stable", "v1", "v2", "latest"]
    # The identity endpoint was asked with the App Service protocol, and its token was exchanged.
    req = identity_endpoint.requests[0]
    assert req["query"]["api-version"] == "2019-08-01"
    assert req["headers"]["X-IDENTITY-HEADER"] == identity_endpoint.header_secret
    assert set(emulator.aad_tokens_seen()) <= set(identity_endpoint.issued)
    assert emulator.aad_tokens_seen()
    flow = [(e["method"], e["path"], e["status"]) for e in emulator.request_log()[:4]]
    assert flow == [
        ("GET", "/acr/v1/_catalog", 401),
        ("POST", "/oauth2/exchange", 200),
        ("POST", "/oauth2/token", 200),
        ("GET", "/acr/v1/_catalog", 200),
    ]
    assert "v1" not in emulator.dump()["repositories"]["hello-world"]["tags"]


async def test_aio_manifests_paging_and_properties(
    emulator: EmulatorServer, identity_endpoint: ManagedIdentityEndpoint
) -> None:
    async with (
        ManagedIdentityCredential() as cred,
        sdk_client(emulator, cred) as c,
    ):
        for order in ("timedesc", "timeasc"):
            pages = c.list_manifest_properties("team/web", order_by=order, results_per_page=3)
            ms = [m async for m in pages]
            times = [m.last_updated_on for m in ms]
            assert sorted(times, reverse=order == "timedesc") == times and len(ms) == 4
        got = await c.get_manifest("team/web", "1.0")
        props = await c.update_manifest_properties("team/web", got.digest, can_delete=False)
        assert props.can_delete is False
        with pytest.raises(HttpResponseError) as err:
            await c.delete_manifest("team/web", got.digest)
    assert err.value.status_code == 405


async def test_refused_aad_token_gets_401(emulator_factory, identity_endpoint) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(aad_allow_list={"some-other-token"})
    async with (
        ManagedIdentityCredential() as cred,
        sdk_client(emu, cred) as c,
    ):
        with pytest.raises(HttpResponseError) as err:
            _ = [n async for n in c.list_repository_names()]
    assert err.value.status_code == 401
    assert ("POST", "/oauth2/exchange", 401) in [
        (e["method"], e["path"], e["status"]) for e in emu.request_log()
    ]
