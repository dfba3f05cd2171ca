"""App settings (environment variables) and CLI flags -> a validated Config.

INTERFACE FIRST: Config is the contract between settings, service, acr client and triggers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from purge.rules import Rule

AZURE_REGISTRY_SUFFIXES = (".azurecr.io", ".azurecr.cn", ".azurecr.us")


class ConfigError(ValueError):
    """An invalid configuration. `errors` lists every problem, each naming its setting."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Connection:
    """How to reach and authenticate to the registry. Secrets are excluded from repr."""

    login_server: str  # host[:port], no scheme
    allowed_hosts: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    anonymous: bool = False
    client_id: str | None = None  # AZURE_CLIENT_ID: user-assigned managed identity
    audience: str | None = None  # ACR AAD audience for sovereign clouds
    ca_file: str | None = None  # extra CA bundle to trust (local emulator, private CAs)

    @property
    def endpoint(self) -> str:
        return f"https://{self.login_server}"


@dataclass(frozen=True)
class Config:
    connection: Connection
    rules: tuple[Rule, ...]
    schedule: str | None = None
    dry_run: bool = False
    concurrency: int | None = None  # None: adaptive, up to the engine's default ceiling
    time_budget: float | None = None  # seconds; None: the trigger's default
