"""ACR tokens: which identity, and a per-scope cache so steady state costs no token requests.

The stock SDK challenge policy sends every call unauthenticated first and re-exchanges the
refresh token every time (about 4 HTTP requests per operation). `TokenBroker` instead caches
the ACR refresh token and one access token per scope until shortly before the `exp` in the JWT,
and lets concurrent callers share one fetch. It only ever talks to `{endpoint}/oauth2/...` of the
configured registry: the `realm` of a challenge is never followed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.rest import HttpRequest

from purge.config.settings import DEFAULT_AUDIENCE, Connection
from purge.registry.protocol import PermissionDenied, RegistryError
from purge.registry.transport import Answer

#: When a token carries no readable `exp`, assume it lives this long (a 401 renews it anyway).
UNKNOWN_LIFETIME = 60.0
#: Renew this long before `exp`, at most; short-lived tokens renew at 80% of their lifetime.
RENEW_MARGIN = 60.0
API_VERSION = "2021-07-01"

#: Sends a token request; the answer is read like every other (capped, see transport).
Send = Callable[[HttpRequest], Awaitable[Answer]]

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, decoded with the url-safe alphabet; None if it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    # url-safe per RFC 7519; also accept the standard alphabet some issuers use
    body = parts[1].replace("+", "-").replace("/", "_").rstrip("=")
    payload = body + "=" * (-len(body) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def renew_at(token: str, now: float) -> float:
    """When to stop using `token`: before its `exp`, by a margin fitting its lifetime.

    `exp` is read against the local clock: counting the lifetime (`exp - iat`) from arrival
    instead would outlive the token by up to the second that `iat` was rounded down by.
    """
    claims = jwt_claims(token) or {}
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return now + UNKNOWN_LIFETIME
    iat = claims.get("iat")
    lifetime = exp - iat if isinstance(iat, int | float) and iat < exp else RENEW_MARGIN * 5
    return float(exp) - min(RENEW_MARGIN, lifetime / 5)


def grants_every_repository(token: str) -> bool | None:
    """Does this ACR access token grant `repository:*:*`? None when its claims cannot be read.

    An ABAC-enabled registry answers a wildcard request with a token that lacks it: the
    client then asks per repository instead.
    """
    claims = jwt_claims(token)
    access = claims.get("access") if claims else None
    if not isinstance(access, list):
        return None
    return any(
        isinstance(item, dict)
        and item.get("type", item.get("Type")) == "repository"
        and item.get("name", item.get("Name")) == "*"
        for item in access
    )


def parse_challenge(header: str) -> dict[str, str]:
    """`Bearer realm="...",service="...",scope="..."` -> its parameters (lower-case keys)."""
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return {key.lower(): value for key, value in _CHALLENGE_PARAM.findall(params)}


class TokenSource(Protocol):
    """How access tokens for a scope are obtained: AAD exchange, Basic, or a refresh token."""

    async def fetch(self, send: Send, service: str, scope: str) -> str: ...

    async def close(self) -> None: ...


def _form(url: str, fields: dict[str, str]) -> HttpRequest:
    return HttpRequest(
        "POST", url, params={"api-version": API_VERSION}, data=fields,
        headers={"Accept": "application/json"},
    )  # fmt: skip


async def _token_field(response: Answer, field: str, what: str) -> str:
    """Read `field` from a token endpoint's JSON; errors never echo the body (it may hold one)."""
    if response.status_code in (401, 403):
        raise PermissionDenied(
            f"{what} was refused (HTTP {response.status_code}): the identity has no access to "
            "this registry; it needs AcrPull to list and AcrDelete to delete (or the "
            "repository-scoped roles on ABAC-enabled registries)",
            status=response.status_code,
        )
    if response.status_code != 200:
        raise RegistryError(
            f"{what} failed: HTTP {response.status_code}", status=response.status_code
        )
    try:
        body = response.json()
        value = body.get(field) if isinstance(body, dict) else None
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{what} answered 200 without a {field}", status=200)
    return value


class AadTokenSource:
    """Managed identity / DefaultAzureCredential -> ACR refresh token -> access tokens."""

    def __init__(self, credential: AsyncTokenCredential, audience: str) -> None:
        self._credential = credential
        self._aad_scope = audience.rstrip("/") + "/.default"
        self._refresh: str | None = None
        self._refresh_until = 0.0
        self._lock = asyncio.Lock()

    async def _refresh_token(self, send: Send, service: str, *, renew: bool) -> str:
        async with self._lock:
            now = time.time()
            if renew or self._refresh is None or now >= self._refresh_until:
                aad = await self._credential.get_token(self._aad_scope)
                fields = {
                    "grant_type": "access_token",
                    "service": service,
                    "access_token": aad.token,
                }
                response = await send(_form("/oauth2/exchange", fields))
                self._refresh = await _token_field(response, "refresh_token", "ACR token exchange")
                self._refresh_until = renew_at(self._refresh, now)
            return self._refresh

    async def fetch(self, send: Send, service: str, scope: str) -> str:
        for renew in (False, True):
            refresh = await self._refresh_token(send, service, renew=renew)
            fields = {
                "grant_type": "refresh_token", "service": service, "scope": scope,
                "refresh_token": refresh,
            }  # fmt: skip
            response = await send(_form("/oauth2/token", fields))
            if response.status_code == 401 and not renew:
                continue  # the refresh token was revoked or expired early: exchange once more
            return await _token_field(response, "access_token", "ACR access token request")
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._credential.close()


class RefreshTokenSource:
    """An ACR refresh token given by the user (acr purge's `-u ""` or zero-GUID user mode)."""

    def __init__(self, refresh_token: str) -> None:
        self._refresh = refresh_token

    async def fetch(self, send: Send, service: str, scope: str) -> str:
        fields = {
            "grant_type": "refresh_token", "service": service, "scope": scope,
            "refresh_token": self._refresh,
        }  # fmt: skip
        response = await send(_form("/oauth2/token", fields))
        return await _token_field(response, "access_token", "ACR access token request")

    async def close(self) -> None:
        return None


class BasicTokenSource:
    """ACR admin user or repository-scoped token: the Docker token flow with Basic credentials."""

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._basic = "Basic " + base64.b64encode(raw).decode("ascii")

    async def fetch(self, send: Send, service: str, scope: str) -> str:
        request = HttpRequest(
            "GET", "/oauth2/token", params={"service": service, "scope": scope},
            headers={"Accept": "application/json", "Authorization": self._basic},
        )  # fmt: skip
        response = await send(request)
        try:
            body = response.json() if response.status_code == 200 else {}
        except (ValueError, RecursionError):
            body = {}
        field = "access_token" if isinstance(body, dict) and body.get("access_token") else "token"
        return await _token_field(response, field, "ACR token request with username/password")

    async def close(self) -> None:
        return None


@dataclass
class _Cached:
    token: str
    until: float


class TokenBroker:
    """Access tokens per scope: cached until shortly before expiry, one fetch per scope at a time.

    `service` is the login server unless a challenge named another service (ACR uses the login
    server; an emulator on a port may differ): that is only a form field, never a destination.
    """

    def __init__(
        self, source: TokenSource, service: str, *, clock: Callable[[], float] = time.time
    ):
        self._source = source
        self.service = service
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0

    def cached(self, scope: str) -> str | None:
        entry = self._cache.get(scope)
        if entry is not None and self._clock() < entry.until:
            return entry.token
        return None

    async def token(self, send: Send, scope: str, *, reject: str | None = None) -> str:
        """A valid token for `scope`; `reject` is one the registry just refused (fetch anew)."""
        found = self.cached(scope)
        if found is not None and found != reject:
            return found
        seen = self._cache.get(scope)
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:
            # Another task fetched one while this one waited: that token is as fresh as any
            # fetch would give (even if already due for renewal), so share it; a 401 renews it.
            # (An unchanged entry was already found stale or refused above.)
            entry = self._cache.get(scope)
            if entry is not None and entry is not seen and entry.token != reject:
                return entry.token
            self.fetches += 1
            fresh = await self._source.fetch(send, self.service, scope)
            self._cache[scope] = _Cached(fresh, renew_at(fresh, self._clock()))
            return fresh

    def tokens(self) -> list[str]:
        """Every token held (for tests that check nothing leaks)."""
        return [entry.token for entry in self._cache.values()]

    async def close(self) -> None:
        await self._source.close()


def aad_credential(connection: Connection) -> AsyncTokenCredential:
    """Managed identity in Azure (App Service/Functions variables), else the default chain."""
    if os.environ.get("IDENTITY_ENDPOINT") or os.environ.get("MSI_ENDPOINT"):
        from azure.identity.aio import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=connection.client_id)
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=connection.client_id)


def token_source(connection: Connection) -> TokenSource:
    """The identity the connection asks for: refresh token, username/password, or Azure AD."""
    if connection.refresh_token:
        return RefreshTokenSource(connection.refresh_token)
    if connection.username is not None or connection.password is not None:
        if not connection.username or not connection.password:
            raise ValueError(
                "username and password (-u/--username, -p/--password) must be given together"
            )
        return BasicTokenSource(connection.username, connection.password)
    return AadTokenSource(aad_credential(connection), connection.audience or DEFAULT_AUDIENCE)
