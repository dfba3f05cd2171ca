"""Pure parts of the ACR client: JWT expiry, challenges, scopes, host confinement, JSON mapping."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from purge.config.hosts import UntrustedRegistry, trusted_host
from purge.config.settings import Connection
from purge.registry.policies import scope_for
from purge.registry.protocol import ManifestUnreadable
from purge.registry.tokens import (
    TokenBroker,
    jwt_claims,
    parse_challenge,
    renew_at,
    token_source,
)
from purge.registry.wire import body_from_json, manifest_from_json, parse_time, tag_from_json


def jwt(payload: dict[str, object], *, urlsafe: bool = True) -> str:
    raw = json.dumps(payload).encode()
    enc = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
    return "eyJhbGciOiJSUzI1NiJ9." + enc.decode().rstrip("=") + ".sig"


def test_jwt_claims_use_the_url_safe_alphabet() -> None:
    # This payload encodes to base64 containing '-'/'_' in url-safe form ('+'/'/' otherwise):
    # the SDK's b64decode would misread it.
    payload = {"exp": 2000000000, "sub": "??>>??>>~~~"}
    token = jwt(payload)
    assert "-" in token.split(".")[1] or "_" in token.split(".")[1]
    assert jwt_claims(token) == payload
    assert jwt_claims(jwt(payload, urlsafe=False)) == payload


@pytest.mark.parametrize("token", ["opaque", "a.b", "a.!!!.c", "a." + "bm90IGpzb24" + ".c"])
def test_non_jwt_tokens_have_no_claims(token: str) -> None:
    assert jwt_claims(token) is None


def test_renew_before_exp_with_a_margin_fitting_the_lifetime() -> None:
    long_lived = jwt({"iat": 1000, "exp": 1000 + 3600})
    assert renew_at(long_lived, now=1000) == 1000 + 3600 - 60
    short = jwt({"iat": 1000, "exp": 1010})
    assert renew_at(short, now=1000) == pytest.approx(1008)
    assert renew_at("opaque", now=50) > 50


async def test_waiters_share_the_token_fetched_while_they_waited() -> None:
    """Tokens that are due for renewal the moment they arrive (a clock ahead of the registry,
    a tiny lifetime) must not make every waiting request fetch one of its own."""
    fetched: list[str] = []

    class Source:
        async def fetch(self, send: Any, service: str, scope: str) -> str:
            await asyncio.sleep(0.01)
            fetched.append(jwt({"iat": 1000, "exp": 1000, "n": len(fetched)}))
            return fetched[-1]

        async def close(self) -> None:
            return None

    broker = TokenBroker(Source(), "r.azurecr.io", clock=lambda: 1000.0)
    tokens = await asyncio.gather(*(broker.token(None, "s") for _ in range(20)))  # type: ignore[arg-type]
    assert len(fetched) == 1 and set(tokens) == {fetched[0]}
    # a refused token is never handed out again
    assert await broker.token(None, "s", reject=fetched[0]) == fetched[1]  # type: ignore[arg-type]


def test_parse_challenge() -> None:
    header = (
        'Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io",'
        'scope="repository:a/b:pull,push",error="insufficient_scope"'
    )
    assert parse_challenge(header) == {
        "realm": "https://r.azurecr.io/oauth2/token",
        "service": "r.azurecr.io",
        "scope": "repository:a/b:pull,push",
        "error": "insufficient_scope",
    }
    assert parse_challenge('Basic realm="x"') == {}


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/acr/v1/_catalog", "registry:catalog:*"),
        ("GET", "/acr/v1/team%2Fapp/_tags", "repository:team/app:metadata_read"),
        ("GET", "/acr/v1/team/app/_manifests", "repository:team/app:metadata_read"),
        ("PATCH", "/acr/v1/team%2Fapp/_tags/v1", "repository:team/app:metadata_write"),
        ("DELETE", "/acr/v1/team%2Fapp/_tags/v1", "repository:team/app:delete"),
        ("PATCH", "/acr/v1/a/_manifests/sha256%3Aab", "repository:a:metadata_write"),
        ("GET", "/v2/team%2Fapp/manifests/sha256:ab", "repository:team/app:pull"),
        ("DELETE", "/v2/team%2Fapp/manifests/sha256%3Aab", "repository:team/app:delete"),
        ("GET", "/oauth2/token", None),
        ("GET", "/v2/", None),
    ],
)
def test_scope_for_requests(method: str, path: str, scope: str | None) -> None:
    assert scope_for(method, path) == scope


@pytest.mark.parametrize(
    "server",
    [
        "myreg.azurecr.io",
        "MyReg.AzureCR.io",
        "r.azurecr.cn",
        "r.azurecr.us:443",
        "https://r.azurecr.io",
    ],
)
def test_azure_registry_hosts_are_trusted(server: str) -> None:
    assert trusted_host(server).endswith((".azurecr.io", ".azurecr.cn", ".azurecr.us", ":443"))


@pytest.mark.parametrize(
    "server",
    [
        "evil.example.com",
        "azurecr.io.evil.com",
        ".azurecr.io",
        "myreg.azurecr.io.evil.com",
        "http://myreg.azurecr.io",
        "myreg.azurecr.io/path",
        "user@myreg.azurecr.io",
        "127.0.0.1:8443",
        "",
    ],
)
def test_other_hosts_are_refused_with_a_clear_message(server: str) -> None:
    with pytest.raises(UntrustedRegistry, match="PURGE_REGISTRY"):
        trusted_host(server)


def test_allowed_hosts_admit_a_local_registry() -> None:
    assert trusted_host("127.0.0.1:8443", ("127.0.0.1",)) == "127.0.0.1:8443"
    assert trusted_host("localhost:9", ("LOCALHOST:9",)) == "localhost:9"
    with pytest.raises(UntrustedRegistry, match="PURGE_ALLOWED_HOSTS"):
        trusted_host("127.0.0.1:8443", ("127.0.0.1:9999",))


def test_parse_time() -> None:
    assert parse_time("2023-02-28T18:36:48.8081712Z") == datetime(
        2023, 2, 28, 18, 36, 48, 808171, tzinfo=timezone.utc
    )
    assert parse_time("2023-02-28T18:36:48Z") == datetime(
        2023, 2, 28, 18, 36, 48, tzinfo=timezone.utc
    )
    assert parse_time("2023-02-28T20:36:48+02:00") == datetime(
        2023, 2, 28, 18, 36, 48, tzinfo=timezone.utc
    )
    for bad in (None, "", "yesterday", "2023-13-45T99:00:00Z", 12345):
        assert parse_time(bad) is None


def test_tag_mapping_and_fail_closed_locks() -> None:
    tag = tag_from_json(
        {
            "name": "v1",
            "digest": "sha256:aa",
            "lastUpdateTime": "garbage",
            "createdTime": "2024-01-01T00:00:00Z",
            "changeableAttributes": {"deleteEnabled": True, "writeEnabled": False},
        }
    )
    assert tag.last_updated is None
    assert tag.created == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert tag.locked
    missing = tag_from_json({"name": "v2", "digest": "sha256:bb"})
    assert missing.locked  # unknown lock state: treated as locked


def test_manifest_mapping_keeps_media_types_and_references() -> None:
    m = manifest_from_json(
        {
            "digest": "sha256:idx",
            "imageSize": 12,
            "lastUpdateTime": "2024-01-01T00:00:00.1234567Z",
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "tags": ["1.0"],
            "references": [
                {"digest": "sha256:c1", "architecture": "amd64"},
                {"digest": "sha256:c2"},
            ],
            "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True},
        }
    )
    assert m.is_index and m.references == ("sha256:c1", "sha256:c2")
    assert m.tags == ("1.0",) and m.size == 12 and not m.locked
    plain = manifest_from_json(
        {
            "digest": "sha256:img",
            "configMediaType": "application/vnd.oci.image.config.v1+json",
            "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True},
        }
    )
    assert plain.references is None and plain.media_type is None and plain.tags == ()
    assert plain.config_media_type == "application/vnd.oci.image.config.v1+json"


def test_body_children_and_subject() -> None:
    body = body_from_json(
        "sha256:x",
        {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"digest": "sha256:a"}],
        },
        "ignored",
    )
    assert body.children == ("sha256:a",) and body.subject is None
    ref = body_from_json(
        "sha256:y",
        {"subject": {"digest": "sha256:x"}},
        "application/vnd.oci.image.manifest.v1+json",
    )
    assert (
        ref.subject == "sha256:x" and ref.media_type == "application/vnd.oci.image.manifest.v1+json"
    )


@pytest.mark.parametrize(
    "doc", [[], {"manifests": "x"}, {"manifests": [{"size": 1}]}, {"subject": {"size": 1}}]
)
def test_malformed_bodies_are_unreadable(doc: object) -> None:
    with pytest.raises(ManifestUnreadable):
        body_from_json("sha256:z", doc, None)


def test_username_without_password_is_refused() -> None:
    with pytest.raises(ValueError, match="-p/--password"):
        token_source(Connection(login_server="r.azurecr.io", username="admin"))
