"""Token caching, proven from the emulator's request log: stock SDK vs purge.registry.acr.

Both clients use the real ManagedIdentityCredential against a local managed-identity endpoint,
so the whole chain (AAD token -> /oauth2/exchange -> /oauth2/token -> call) is real.
"""

from __future__ import annotations

import asyncio
from typing import Any

from azure.containerregistry.aio import ContainerRegistryClient
from azure.identity.aio import ManagedIdentityCredential

from acr_emulator.testing import EmulatorServer
from purge.config.settings import Connection
from purge.registry.acr import AcrRegistry, open_registry


def scenario(repos: int, tags: int) -> dict[str, Any]:
    return {
        "repositories": {
            f"repo{r}": {
                "manifests": [
                    {"id": f"m{i}", "kind": "image", "updated": "-40d", "tags": [f"t{i}"]}
                    for i in range(tags)
                ]
            }
            for r in range(repos)
        }
    }


def aad(emu: EmulatorServer, **kw: Any) -> AcrRegistry:
    conn = Connection(login_server=emu.login_server, allowed_hosts=("127.0.0.1",),
                      ca_file=emu.ca_file, client_id=kw.pop("client_id", None))  # fmt: skip
    return open_registry(conn, **kw)


def split(log: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(listing requests, token requests, other requests) in a request log."""
    listing = sum(
        1 for e in log if e["method"] == "GET" and e["path"].endswith(("_tags", "_catalog"))
    )
    tokens = sum(1 for e in log if e["path"].startswith("/oauth2/"))
    return listing, tokens, len(log) - listing - tokens


async def purge_with_stock_sdk(emu: EmulatorServer, repos: int, tags: int) -> None:
    async with (
        ManagedIdentityCredential() as cred,
        ContainerRegistryClient(emu.endpoint, cred, connection_verify=emu.ca_file) as client,
    ):
        for r in range(repos):
            async for tag in client.list_tag_properties(f"repo{r}"):
                await client.delete_tag(f"repo{r}", tag.name)


async def purge_with_ours(emu: EmulatorServer, repos: int, tags: int) -> AcrRegistry:
    async with aad(emu) as reg:
        for r in range(repos):
            names = [t.name async for t in reg.list_tags(f"repo{r}")]
            assert await asyncio.gather(*(reg.delete_tag(f"repo{r}", n) for n in names))
    return reg


async def test_one_request_per_deletion_in_steady_state(
    emulator_factory: Any, identity_endpoint: Any
) -> None:
    repos, tags = 2, 60
    stock_emu = emulator_factory(scenario=scenario(repos, tags))
    ours_emu = emulator_factory(scenario=scenario(repos, tags))
    await purge_with_stock_sdk(stock_emu, repos, tags)
    await purge_with_ours(ours_emu, repos, tags)
    deleted = repos * tags
    for emu in (stock_emu, ours_emu):
        assert all(not r["tags"] for r in emu.dump()["repositories"].values())
    stock = split(stock_emu.request_log())
    ours = split(ours_emu.request_log())
    stock_per = (stock[1] + stock[2]) / deleted
    ours_per = (ours[1] + ours[2]) / deleted
    print(f"\nrequests per deleted tag, excluding listing: stock SDK {stock_per:.2f} "
          f"(tokens {stock[1]}, calls {stock[2]}), purge.registry.acr {ours_per:.3f} "
          f"(tokens {ours[1]}, calls {ours[2]})")  # fmt: skip
    assert ours_per <= 1.05
    assert ours[2] == deleted  # no unauthenticated first attempts, no retried calls
    assert stock_per >= 3  # what the cache saves
    # one exchange for the whole run; the AAD token was fetched once from the identity endpoint
    assert sum(1 for e in ours_emu.request_log() if e["path"] == "/oauth2/exchange") == 1
    assert len(identity_endpoint.issued) >= 1


async def test_token_expiring_mid_run_is_renewed_transparently(
    emulator_factory: Any, identity_endpoint: Any
) -> None:
    emu = emulator_factory(scenario=scenario(1, 12))
    emu.set_token_lifetime(1.5)
    async with aad(emu) as reg:
        names = [t.name async for t in reg.list_tags("repo0")]
        for name in names:
            assert await reg.delete_tag("repo0", name) is True
            await asyncio.sleep(0.25)
    assert emu.dump()["repositories"]["repo0"]["tags"] == {}
    log = emu.request_log()
    refreshes = [e for e in log if e["path"] == "/oauth2/token"]
    failures = [e for e in log if e["status"] not in (200, 202)]
    # renewed before expiry (exp is read from the JWT), so no call had to be repeated
    assert len(refreshes) >= 2
    assert all(e["status"] == 401 for e in failures) and len(failures) <= 1
    assert sum(1 for e in log if e["method"] == "DELETE" and e["status"] == 202) == 12


async def test_a_token_revoked_mid_run_is_replaced_after_one_challenge(
    emulator_factory: Any, identity_endpoint: Any
) -> None:
    emu = emulator_factory(scenario=scenario(1, 3))
    async with aad(emu) as reg:
        assert await reg.delete_tag("repo0", "t0") is True
        emu._call(emu.emulator.tokens.tokens.clear)  # the registry forgets every token
        emu.reset_log()
        assert await reg.delete_tag("repo0", "t1") is True
    steps = [(e["method"], e["path"], e["status"]) for e in emu.request_log()]
    assert steps == [
        ("DELETE", "/acr/v1/repo0/_tags/t1", 401),
        ("POST", "/oauth2/token", 401),  # the refresh token is gone too
        ("POST", "/oauth2/exchange", 200),
        ("POST", "/oauth2/token", 200),
        ("DELETE", "/acr/v1/repo0/_tags/t1", 202),
    ]


async def test_user_assigned_identity_client_id_is_sent(
    emulator: EmulatorServer, identity_endpoint: Any
) -> None:
    async with aad(emulator, client_id="00000000-1111-2222-3333-444444444444") as reg:
        _ = [r async for r in reg.list_repositories()]
    assert identity_endpoint.requests
    query = identity_endpoint.requests[-1]["query"]
    assert query.get("client_id") == "00000000-1111-2222-3333-444444444444"
    assert query["resource"].startswith("https://containerregistry.azure.net")


async def test_a_token_renewal_never_waits_for_a_slot_that_its_waiters_hold(
    emulator_factory: Any, identity_endpoint: Any
) -> None:
    """Renewal under a full limiter: one task holds the only slot (as the executor does around a
    deletion) and needs the token that another task is renewing. Were the token request to wait
    for a slot, neither could go on until the operation deadline (120 s) failed both."""
    emu = emulator_factory(scenario=scenario(2, 2))
    emu.set_token_lifetime(2)
    async with aad(emu, max_concurrency=1) as reg:
        _ = [r async for r in reg.list_repositories()]  # the wide token is cached
        await asyncio.sleep(2.1)  # ... and now stale, so the next request renews it
        holding = asyncio.Event()
        # created before the slot is taken, so that it does not share the slot (a context copy)
        lister = asyncio.create_task(_tag_names(reg, "repo1", after=holding))
        try:
            async with reg.slot():  # the only slot
                holding.set()
                await asyncio.sleep(0.3)  # the lister is renewing the token
                mine = await asyncio.wait_for(_tag_names(reg, "repo0"), 10)
            assert sorted(mine) == ["t0", "t1"]
            assert sorted(await asyncio.wait_for(lister, 10)) == ["t0", "t1"]
        finally:
            lister.cancel()
    assert all(e["status"] == 200 for e in emu.request_log())


async def _tag_names(
    reg: AcrRegistry, repository: str, *, after: asyncio.Event | None = None
) -> list[str]:
    if after is not None:
        await after.wait()
    return [t.name async for t in reg.list_tags(repository)]
