"""ACR's token rules beyond the SDK's own flow: several scopes, the refresh-token user, ABAC.

ACR grants every `scope=` field of one token request; `00000000-0000-0000-0000-000000000000`
with an ACR refresh token as the password is how `az acr login --expose-token` users, docker and
acr-cli's refresh-token mode sign in; ACR grants `repository:*:*` except on ABAC registries.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

from acr_emulator.auth import REFRESH_TOKEN_USER
from acr_emulator.testing import EmulatorServer
from tests.integration.test_emulator_auth import http


def refresh_token(emu: EmulatorServer) -> str:
    form = {"grant_type": "access_token", "service": emu.login_server, "access_token": "aad"}
    r = http(emu, "POST", "/oauth2/exchange", data=form)
    assert r.status_code == 200
    return str(r.json()["refresh_token"])


def access(emu: EmulatorServer, refresh: str, *scopes: str) -> requests.Response:
    form = [("grant_type", "refresh_token"), ("service", emu.login_server)]
    form += [("scope", s) for s in scopes] + [("refresh_token", refresh)]
    return http(emu, "POST", "/oauth2/token", data=form)


def claims(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(token.split(".")[1])))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_scope_field_is_granted(emulator: EmulatorServer) -> None:
    r = access(
        emulator,
        refresh_token(emulator),
        "repository:hello-world:metadata_read",
        "repository:team/web:metadata_read",
        "registry:catalog:*",
    )
    auth = bearer(r.json()["access_token"])
    assert http(emulator, "GET", "/acr/v1/hello-world/_tags", headers=auth).status_code == 200
    assert http(emulator, "GET", "/acr/v1/team%2Fweb/_tags", headers=auth).status_code == 200
    assert http(emulator, "GET", "/acr/v1/_catalog", headers=auth).status_code == 200
    assert http(emulator, "DELETE", "/acr/v1/hello-world/_tags/v1", headers=auth).status_code == 401


def test_wildcard_scope_is_granted_once_for_everything(emulator: EmulatorServer) -> None:
    r = access(emulator, refresh_token(emulator), "registry:catalog:* repository:*:*")
    token = r.json()["access_token"]
    assert {(a["Type"], a["Name"]) for a in claims(token)["access"]} == {
        ("registry", "catalog"),
        ("repository", "*"),
    }
    auth = bearer(token)
    assert http(emulator, "GET", "/acr/v1/_catalog", headers=auth).status_code == 200
    assert http(emulator, "DELETE", "/acr/v1/hello-world/_tags/v1", headers=auth).status_code == 202
    assert http(emulator, "GET", "/v2/team/web/manifests/1.0", headers=auth).status_code == 200


def test_abac_registry_refuses_wildcard_repositories(emulator_factory: Any) -> None:
    emu = emulator_factory(abac=True)
    refresh = refresh_token(emu)
    assert "aad_identity" in claims(refresh)  # how acr-cli tells an ABAC registry
    wide = access(emu, refresh, "registry:catalog:* repository:*:*")
    assert wide.status_code == 200
    auth = bearer(wide.json()["access_token"])
    assert http(emu, "GET", "/acr/v1/_catalog", headers=auth).status_code == 200
    denied = http(emu, "GET", "/acr/v1/hello-world/_tags", headers=auth)
    assert denied.status_code == 401 and "insufficient_scope" in denied.headers["WWW-Authenticate"]
    narrow = access(emu, refresh, "repository:hello-world:metadata_read,delete")
    auth = bearer(narrow.json()["access_token"])
    assert http(emu, "GET", "/acr/v1/hello-world/_tags", headers=auth).status_code == 200
    assert http(emu, "DELETE", "/acr/v1/hello-world/_tags/v1", headers=auth).status_code == 202


def test_non_abac_refresh_token_has_no_aad_identity(emulator: EmulatorServer) -> None:
    assert "aad_identity" not in claims(refresh_token(emulator))


def test_refresh_token_as_basic_password(emulator: EmulatorServer) -> None:
    refresh = refresh_token(emulator)
    creds = (REFRESH_TOKEN_USER, refresh)
    assert http(emulator, "GET", "/acr/v1/_catalog", auth=creds).status_code == 200
    assert http(emulator, "GET", "/v2/hello-world/manifests/v1", auth=creds).status_code == 200
    assert (
        http(emulator, "GET", "/acr/v1/_catalog", auth=(REFRESH_TOKEN_USER, "x")).status_code == 401
    )
    assert http(emulator, "GET", "/acr/v1/_catalog", auth=("someone", refresh)).status_code == 401
    # the Docker token flow (docker login -u 00000000-... -p <refresh token>)
    r = http(
        emulator,
        "GET",
        "/oauth2/token",
        params={"service": emulator.login_server, "scope": "repository:hello-world:pull"},
        auth=creds,
    )
    assert r.status_code == 200
    assert http(
        emulator, "GET", "/v2/hello-world/manifests/v1", headers=bearer(r.json()["token"])
    ).ok
    # and the SDK-style password grant
    form = {
        "grant_type": "password",
        "service": emulator.login_server,
        "scope": "registry:catalog:*",
        "username": REFRESH_TOKEN_USER,
        "password": refresh,
    }
    r = http(emulator, "POST", "/oauth2/token", data=form)
    assert r.status_code == 200
    auth = bearer(r.json()["access_token"])
    assert http(emulator, "GET", "/acr/v1/_catalog", headers=auth).status_code == 200
