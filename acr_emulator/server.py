"""Assemble state, auth, controls and handlers into a TLS-serving aiohttp app."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from .api import Api
from .auth import TokenService
from .faults import Controls
from .scenario import load
from .state import Registry

_CA: trustme.CA | None = None


def test_ca() -> trustme.CA:
    """One CA per process: making keys is the slow part of starting an emulator."""
    global _CA
    if _CA is None:
        _CA = trustme.CA(organization_name="acr-emulator test CA")
    return _CA


def server_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(ctx)
    return ctx


@dataclass
class Emulator:
    registry: Registry
    tokens: TokenService
    controls: Controls
    api: Api

    @classmethod
    def build(
        cls,
        scenario: dict[str, Any] | str | Path | None,
        username: str | None,
        password: str | None,
        anonymous_pull: bool,
        controls: bool,
        aad_allow_list: set[str] | None = None,
        abac: bool = False,
    ) -> Emulator:
        registry = load(scenario)
        tokens = TokenService(username, password, anonymous_pull, aad_allow_list, abac=abac)
        ctl = Controls()
        return cls(registry, tokens, ctl, Api(registry, tokens, ctl, controls))

    def app(self) -> web.Application:
        return self.api.app()


def write_ca(ca: trustme.CA, data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path
