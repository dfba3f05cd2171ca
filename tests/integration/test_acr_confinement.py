"""Credentials go only to the configured registry host, over https, and never into logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from acr_emulator.testing import EmulatorServer
from purge.config.hosts import UntrustedRegistry
from purge.config.settings import Connection
from purge.registry.acr import open_registry
from purge.registry.policies import ForeignHostRequest
from purge.registry.protocol import RegistryError


def conn(emu: EmulatorServer, allowed: tuple[str, ...] = ("127.0.0.1",), **kw: Any) -> Connection:
    return Connection(
        login_server=emu.login_server, allowed_hosts=allowed, ca_file=emu.ca_file, **kw
    )


def test_untrusted_host_is_refused_before_any_request(
    emulator: EmulatorServer, identity_endpoint: Any
) -> None:
    with pytest.raises(UntrustedRegistry, match="PURGE_ALLOWED_HOSTS"):
        open_registry(conn(emulator, allowed=()))
    with pytest.raises(UntrustedRegistry, match="https"):
        open_registry(Connection(login_server=f"http://{emulator.login_server}",
                                 allowed_hosts=("127.0.0.1",)))  # fmt: skip
    assert emulator.request_log() == []
    assert identity_endpoint.requests == []


async def test_challenge_realm_pointing_elsewhere_gets_no_token(
    emulator_factory: Any, identity_endpoint: Any
) -> None:
    registry = emulator_factory()
    elsewhere = emulator_factory()
    api = registry.emulator.api
    original = api.challenge

    def foreign_realm(request: Any, need: Any, insufficient: bool) -> Any:
        err = original(request, need, insufficient)
        err.challenge = err.challenge.replace(
            f"https://{registry.login_server}/", f"https://{elsewhere.login_server}/"
        )
        return err

    api.challenge = foreign_realm  # type: ignore[method-assign]
    async with open_registry(conn(registry)) as reg:
        repos = [r async for r in reg.list_repositories()]
        # force a challenge round: the registry forgets our token
        registry._call(registry.emulator.tokens.tokens.clear)
        tags = [t async for t in reg.list_tags("hello-world")]
    assert repos and tags
    assert any(e["status"] == 401 for e in registry.request_log())  # a challenge was answered
    assert elsewhere.request_log() == []
    assert elsewhere.aad_tokens_seen() == [] and elsewhere.issued_tokens() == []
    assert registry.aad_tokens_seen()  # the exchange went to the registry itself


async def test_paging_link_to_another_host_is_not_followed(
    emulator_factory: Any, identity_endpoint: Any
) -> None:
    registry = emulator_factory()
    elsewhere = emulator_factory()
    api = registry.emulator.api
    original = api._link

    def foreign_link(*args: Any, **kwargs: Any) -> str:
        link: str = original(*args, **kwargs)
        return link.replace("</", f"<https://{elsewhere.login_server}/")

    api._link = foreign_link  # type: ignore[method-assign]
    async with open_registry(conn(registry)) as reg:
        reg.page_size = 1
        with pytest.raises(ForeignHostRequest):
            _ = [t async for t in reg.list_tags("hello-world")]
        with pytest.raises(ForeignHostRequest):  # the catalog pages like the other listings
            _ = [r async for r in reg.list_repositories()]
    assert elsewhere.request_log() == []


async def test_tokens_never_reach_logs_or_errors(
    emulator: EmulatorServer, identity_endpoint: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    emulator.inject_fault(method="DELETE", path_regex="_tags/v1$", status=500, count=20)
    async with open_registry(conn(emulator)) as reg:
        _ = [r async for r in reg.list_repositories()]
        _ = [t async for t in reg.list_tags("hello-world")]
        for call in (reg.delete_tag("hello-world", "v1"), reg.delete_tag("nope", "x")):
            try:
                await call
            except RegistryError as exc:
                errors.append(repr(exc) + str(exc))
        secrets = reg.broker.tokens()
    secrets += emulator.issued_tokens() + identity_endpoint.issued
    assert secrets and errors
    text = caplog.text + "\n".join(errors)
    assert caplog.records  # azure-core did log requests
    for secret in secrets:
        assert secret not in text
        assert secret.split(".")[-1] not in text


async def test_basic_credentials_never_reach_logs(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = conn(emulator, username=emulator.username, password=emulator.password)
    async with open_registry(connection) as reg:
        _ = [t async for t in reg.list_tags("hello-world")]
    assert emulator.password and emulator.password not in caplog.text
    assert "s3cret" not in repr(connection)
