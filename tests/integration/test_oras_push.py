"""A real OCI client (oras-py) pushes into the emulator; the real azure-containerregistry SDK
reads it back.

oras does all the pushing HTTP itself (blob uploads, manifest PUTs, the Docker token flow
`GET /oauth2/token` with Basic credentials). Its high-level `push` writes an image manifest,
with a `subject` for a referrer; an index has no high-level call, so it goes through oras's own
`do_request` (same session, auth and TLS), the lower-level call `push` itself ends with.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import oras.auth.utils
import oras.oci
import oras.provider
import pytest
from azure.containerregistry import ContainerRegistryClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import ResourceNotFoundError
from azure.core.rest import HttpRequest

from acr_emulator.testing import EmulatorServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SIGNATURE = "application/vnd.cncf.notary.signature"
REPO = "oras/app"


class AadStandIn:
    """Stands in for Azure AD only; the SDK's token exchange and every request are real."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("aad-token-for-tests", int(time.time()) + 3600)


@pytest.fixture
def emu(emulator_factory: Any) -> EmulatorServer:
    server: EmulatorServer = emulator_factory(scenario=None)
    return server


def oras_client(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> oras.provider.Registry:
    # requests reads the CA bundle from the environment; tls_verify pins it per request too.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
    client = oras.provider.Registry(hostname=emu.login_server, tls_verify=emu.ca_file)
    client.auth.set_basic_auth(emu.username or "", emu.password or "")
    authorize_push(client, emu)
    return client


def authorize_push(client: oras.provider.Registry, emu: EmulatorServer) -> None:
    """Get oras a pull,push token for REPO up front, through oras's own token call.

    oras-py 0.2.43 keeps one token per client and, on a 401 `insufficient_scope`, retries with
    that same token: the pull-only token its first `HEAD blob` earns would fail every upload
    after it. The oras CLI avoids this with scope hints (pull,push before a push); this does the
    same with the registry's own challenge for an upload.
    """
    url = f"https://{emu.login_server}/v2/{REPO}/blobs/uploads/"
    challenge = client.session.post(url, verify=emu.ca_file)
    assert challenge.status_code == 401
    header = oras.auth.utils.parse_auth_header(challenge.headers["WWW-Authenticate"])
    assert header.scope == f"repository:{REPO}:pull,push"
    token = client.auth.request_token(header)  # GET /oauth2/token with Basic credentials
    assert token, "the Docker token flow gave oras no token"
    client.auth.set_token_auth(token)


def sdk(emu: EmulatorServer) -> ContainerRegistryClient:
    return ContainerRegistryClient(
        emu.endpoint,
        AadStandIn(),
        audience="https://containerregistry.azure.net",
        connection_verify=emu.ca_file,
        retry_total=0,
    )


def push_image(
    client: oras.provider.Registry,
    emu: EmulatorServer,
    work: Path,
    name: str,
    *,
    tag: str | None,
    subject: oras.oci.Subject | None = None,
    platform: str = "amd64",
) -> str:
    """An image (config + one layer) with oras's high-level push; returns its digest."""
    work.mkdir(parents=True, exist_ok=True)
    layer = work / f"{name}.tar.gz"
    layer.write_bytes(hashlib.sha256(name.encode()).digest() * 64)
    config = work / f"{name}.config.json"
    config.write_text(json.dumps({"architecture": platform, "os": "linux", "name": name}))
    target = f"{emu.login_server}/{REPO}" + (f":{tag}" if tag else f":{name}-untagged")
    response = client.push(
        target,
        files=[f"{layer}:{OCI_LAYER}"],
        manifest_config=f"{config}:{OCI_CONFIG}",
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    digest: str = response.headers["Docker-Content-Digest"]
    return digest


def subject_of(client: oras.provider.Registry, emu: EmulatorServer, ref: str) -> oras.oci.Subject:
    """The OCI descriptor of a pushed manifest, fetched back through oras."""
    url = f"https://{emu.login_server}/v2/{REPO}/manifests/{ref}"
    response = client.do_request(url, "GET", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    assert response.status_code == 200, response.text
    return oras.oci.Subject(
        mediaType=response.headers["Content-Type"],
        digest=response.headers["Docker-Content-Digest"],
        size=len(response.content),
    )


def test_oras_pushes_an_image_that_the_sdk_reads_back(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = oras_client(emu, monkeypatch)
    digest = push_image(client, emu, tmp_path, "web", tag="v1")

    with sdk(emu) as registry:
        assert list(registry.list_repository_names()) == [REPO]
        tags = list(registry.list_tag_properties(REPO))
        assert [(t.name, t.digest) for t in tags] == [("v1", digest)]
        props = registry.get_manifest_properties(REPO, "v1")
        assert props.digest == digest and props.can_delete and props.tags == ["v1"]
        fetched = registry.get_manifest(REPO, "v1")  # the SDK verifies the body's sha256
        assert fetched.digest == digest and fetched.media_type == OCI_MANIFEST
        manifest = fetched.manifest
        assert manifest["config"]["mediaType"] == OCI_CONFIG
        [layer] = manifest["layers"]
        blob = b"".join(registry.download_blob(REPO, layer["digest"]))
        assert blob == (tmp_path / "web.tar.gz").read_bytes()
    # oras went through the Docker token flow: Basic only to /oauth2/token, Bearer elsewhere.
    log = emu.request_log()
    assert any(e["method"] == "GET" and e["path"] == "/oauth2/token" for e in log)
    assert any(e["method"] == "PUT" and "/blobs/uploads/" in e["path"] for e in log)


def test_oras_pushes_a_multi_arch_index(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = oras_client(emu, monkeypatch)
    children = {
        arch: push_image(client, emu, tmp_path, f"app-{arch}", tag=None, platform=arch)
        for arch in ("amd64", "arm64")
    }
    sizes = {arch: subject_of(client, emu, d).size for arch, d in children.items()}
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": sizes[arch],
                "platform": {"architecture": arch, "os": "linux"},
            }
            for arch, digest in children.items()
        ],
    }
    body = json.dumps(index).encode()
    url = f"https://{emu.login_server}/v2/{REPO}/manifests/1.0"
    response = client.do_request(url, "PUT", data=body, headers={"Content-Type": OCI_INDEX})
    assert response.status_code == 201, response.text
    index_digest = "sha256:" + hashlib.sha256(body).hexdigest()
    assert response.headers["Docker-Content-Digest"] == index_digest

    with sdk(emu) as registry:
        props = registry.get_manifest_properties(REPO, "1.0")
        assert props.digest == index_digest
        fetched = registry.get_manifest(REPO, index_digest)
        assert fetched.media_type == OCI_INDEX
        assert [m["digest"] for m in fetched.manifest["manifests"]] == list(children.values())
        listed = {m.digest: m for m in registry.list_manifest_properties(REPO)}
        assert set(listed) == {index_digest, *children.values()}
        assert listed[index_digest].tags == ["1.0"]
        for arch, digest in children.items():
            child = registry.get_manifest(REPO, digest)  # each child pulls and verifies
            assert child.digest == digest and listed[digest].tags == [f"app-{arch}-untagged"]


def test_oras_pushes_a_referrer_that_the_referrers_api_lists(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = oras_client(emu, monkeypatch)
    image = push_image(client, emu, tmp_path, "signed", tag="v2")
    signature = push_image(
        client, emu, tmp_path, "signature", tag="sig", subject=subject_of(client, emu, "v2")
    )

    with sdk(emu) as registry:
        fetched = registry.get_manifest(REPO, signature)
        assert fetched.manifest["subject"]["digest"] == image
        request = HttpRequest("GET", f"/v2/{REPO}/referrers/{image}")
        response = registry._client.send_request(request)  # the SDK's pipeline, auth included
        assert response.status_code == 200, response.text()
        listing = response.json()
        assert listing["mediaType"] == OCI_INDEX
        assert [m["digest"] for m in listing["manifests"]] == [signature]
        # Deleting the subject removes its referrer, as ACR does.
        registry.delete_manifest(REPO, image)
        with pytest.raises(ResourceNotFoundError):
            registry.get_manifest_properties(REPO, signature)
        assert list(registry.list_repository_names()) == []  # an empty repository goes away
