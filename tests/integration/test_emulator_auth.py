"""Auth flows as ACR answers them: challenges, scopes, anonymous pull, Basic, token expiry."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import requests
from azure.containerregistry import ContainerRegistryClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from acr_emulator.testing import EmulatorServer
from tests.integration.test_emulator_sdk_sync import AUDIENCE, StaticAadCredential, client


def http(emu: EmulatorServer, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(method, emu.endpoint + path, verify=emu.ca_file, timeout=10, **kw)


def test_challenge_shape_and_body(emulator: EmulatorServer) -> None:
    r = http(emulator, "GET", "/acr/v1/team%2Fweb/_tags")
    assert r.status_code == 401
    host = emulator.login_server
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer realm="https://{host}/oauth2/token",service="{host}",'
        'scope="repository:team/web:metadata_read"'
    )
    assert r.json()["errors"][0]["detail"] == [
        {"Type": "repository", "Name": "team/web", "Action": "metadata_read"}
    ]


def test_token_for_one_scope_is_insufficient_for_another(emulator: EmulatorServer) -> None:
    form = {"grant_type": "access_token", "service": emulator.login_server, "access_token": "aad"}
    refresh = http(emulator, "POST", "/oauth2/exchange", data=form).json()["refresh_token"]
    exp = json.loads(base64.b64decode(refresh.split(".")[1]))["exp"]
    assert exp > time.time()
    access = http(
        emulator,
        "POST",
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "service": emulator.login_server,
            "scope": "repository:hello-world:metadata_read",
            "refresh_token": refresh,
        },
    ).json()
    auth = {"Authorization": f"Bearer {access['access_token']}"}
    assert http(emulator, "GET", "/acr/v1/hello-world/_tags", headers=auth).status_code == 200
    r = http(emulator, "DELETE", "/acr/v1/hello-world/_tags/v1", headers=auth)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].endswith(',error="insufficient_scope"')
    assert "v1" in emulator.dump()["repositories"]["hello-world"]["tags"]


def test_basic_admin_credentials_on_every_endpoint(emulator: EmulatorServer) -> None:
    good = (emulator.username, emulator.password)
    assert http(emulator, "GET", "/acr/v1/_catalog", auth=good).status_code == 200
    assert http(emulator, "DELETE", "/acr/v1/hello-world/_tags/v1", auth=good).status_code == 202
    assert http(emulator, "GET", "/v2/_catalog", auth=("admin", "wrong")).status_code == 401


def test_anonymous_pull_reads_but_cannot_write(emulator_factory: Any) -> None:
    emu = emulator_factory(anonymous_pull=True)
    with ContainerRegistryClient(
        emu.endpoint, audience=AUDIENCE, connection_verify=emu.ca_file, retry_total=0
    ) as c:
        assert list(c.list_repository_names()) == ["hello-world", "team/web"]
        assert len(list(c.list_manifest_properties("hello-world"))) == 4
        with pytest.raises((ClientAuthenticationError, HttpResponseError)) as err:
            c.delete_tag("hello-world", "v1")
    assert err.value.status_code == 401
    assert "exchange" not in " ".join(e["path"] for e in emu.request_log())
    assert "v1" in emu.dump()["repositories"]["hello-world"]["tags"]


def test_anonymous_refused_when_disabled(emulator: EmulatorServer) -> None:
    with (
        ContainerRegistryClient(
            emulator.endpoint, audience=AUDIENCE, connection_verify=emulator.ca_file, retry_total=0
        ) as c,
        pytest.raises((ClientAuthenticationError, HttpResponseError)),
    ):
        list(c.list_repository_names())


def test_expired_tokens_are_refused(emulator: EmulatorServer) -> None:
    # (The stock SDK 1.2.0 cannot recover from an expired refresh token: its expiry test is
    # inverted. The emulator answers as ACR does; the engine's own token cache must renew.)
    emulator.set_token_lifetime(1)
    form = {"grant_type": "access_token", "service": emulator.login_server, "access_token": "a"}
    refresh = http(emulator, "POST", "/oauth2/exchange", data=form).json()["refresh_token"]
    token_form = {
        "grant_type": "refresh_token",
        "service": emulator.login_server,
        "scope": "registry:catalog:*",
        "refresh_token": refresh,
    }
    access = http(emulator, "POST", "/oauth2/token", data=token_form).json()["access_token"]
    auth = {"Authorization": f"Bearer {access}"}
    assert http(emulator, "GET", "/acr/v1/_catalog", headers=auth).status_code == 200
    time.sleep(1.1)
    r = http(emulator, "GET", "/acr/v1/_catalog", headers=auth)
    assert r.status_code == 401 and "insufficient_scope" not in r.headers["WWW-Authenticate"]
    assert http(emulator, "POST", "/oauth2/token", data=token_form).status_code == 401
    emulator.set_token_lifetime(3600)
    with client(emulator) as c:  # a new client exchanges again and works
        assert len(list(c.list_repository_names())) == 2


def test_docker_token_flow_with_basic(emulator: EmulatorServer) -> None:
    r = http(
        emulator,
        "GET",
        "/oauth2/token",
        params={"service": emulator.login_server, "scope": "repository:hello-world:pull"},
        auth=(emulator.username, emulator.password),
    )
    body = r.json()
    assert r.status_code == 200 and body["token"] == body["access_token"]
    assert body["token"] in emulator.issued_tokens()
    auth = {"Authorization": f"Bearer {body['token']}"}
    assert http(emulator, "GET", "/v2/hello-world/manifests/v1", headers=auth).status_code == 200
    assert http(emulator, "GET", "/oauth2/token", auth=("admin", "bad")).status_code == 401


def test_static_credential_is_only_aad(emulator: EmulatorServer) -> None:
    # Guard that the helper's token goes through the exchange, never straight to the data plane.
    with ContainerRegistryClient(
        emulator.endpoint,
        StaticAadCredential("aad-x"),
        audience=AUDIENCE,
        connection_verify=emulator.ca_file,
    ) as c:
        list(c.list_repository_names())
    assert emulator.aad_tokens_seen()[0] == "aad-x"
