"""Login servers: the one parser of `host[:port]`, and which hosts may receive tokens.

Settings, the CLI, `acr purge` command lines and the registry client all read a login server
through `parse_login_server`, so that one spelling means the same registry everywhere; the client
checks `trusted_host` again before its first request (defence in depth).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Host suffixes of Azure Container Registry login servers (public, China and US Government).
AZURE_REGISTRY_SUFFIXES = (".azurecr.io", ".azurecr.cn", ".azurecr.us")
#: How a login server is written, for error messages.
LOGIN_SERVER_FORM = "expected a login server such as myregistry.azurecr.io (host[:port], no path)"

_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)


class HostError(ValueError):
    """A login server that is malformed (the message says what is wrong, not which setting)."""


class UntrustedRegistry(HostError):
    """The login server is not one we may send credentials to (refused before any request)."""


def parse_login_server(text: str) -> str:
    """`host[:port]`, lower-cased, from `host[:port]` or `https://host[:port][/]`."""
    value = text.strip().lower()
    if value.startswith("http://"):
        raise HostError("plain http is refused (tokens would leak); use https:// or just the host")
    value = value.removeprefix("https://").removesuffix("/")
    try:
        return parse_host_port(value)
    except HostError as exc:
        raise HostError(f"{exc}; {LOGIN_SERVER_FORM}") from None


def parse_host_port(text: str) -> str:
    """`host[:port]` exactly (no scheme), lower-cased: an entry of PURGE_ALLOWED_HOSTS."""
    value = text.strip().lower()
    if not value or any(c in value for c in "/?#@ \t") or "://" in value:
        raise HostError("expected host[:port] with no scheme, path, user or spaces")
    host, sep, port_text = value.partition(":")
    if sep and not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise HostError(f"port {port_text!r} is not a number between 1 and 65535")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        raise HostError(f"{host!r} is not a valid host name")
    return value


def is_azure_registry(login_server: str) -> bool:
    host = login_server.partition(":")[0]
    return any(host.endswith(s) and len(host) > len(s) for s in AZURE_REGISTRY_SUFFIXES)


def is_allowed(login_server: str, allowed_hosts: Iterable[str]) -> bool:
    """An Azure registry, or listed (as host or host:port) in PURGE_ALLOWED_HOSTS."""
    allowed = {entry.strip().lower() for entry in allowed_hosts if entry.strip()}
    host = login_server.partition(":")[0]
    return is_azure_registry(login_server) or host in allowed or login_server in allowed


def trusted_host(login_server: str, allowed_hosts: Iterable[str] = ()) -> str:
    """The parsed login server when tokens may go to it; UntrustedRegistry otherwise."""
    allowed = [entry.strip().lower() for entry in allowed_hosts if entry.strip()]
    try:
        netloc = parse_login_server(login_server)
    except HostError as exc:
        raise UntrustedRegistry(f"PURGE_REGISTRY {login_server!r}: {exc}") from exc
    if is_allowed(netloc, allowed):
        return netloc
    raise UntrustedRegistry(
        f"PURGE_REGISTRY {login_server!r}: tokens are only sent to hosts ending in "
        f"{', '.join(AZURE_REGISTRY_SUFFIXES)} or listed in PURGE_ALLOWED_HOSTS "
        f"(currently: {', '.join(sorted(allowed)) or 'none'})"
    )
