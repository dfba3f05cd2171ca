"""Answers where the emulator once differed from ACR (issue 13), over real HTTPS and the SDK.

Each test names the ACR behaviour it holds the emulator to: empty pages without their list key,
HEAD on /acr/v1, repository locks, ACR's refusal code, the referrers details, OCI upload rules,
name grammar, and no DELETE under /acr/v1/{repo}/_manifests.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from acr_emulator.testing import EmulatorServer
from tests.integration.test_e2e_rules import purge
from tests.integration.test_emulator_auth import http
from tests.integration.test_emulator_sdk_sync import client

DISALLOWED = "REGISTRY_DISALLOWED_OPERATION"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def admin(emu: EmulatorServer) -> tuple[str, str]:
    assert emu.username and emu.password
    return (emu.username, emu.password)


def code(r: Any) -> str:
    return str(r.json()["errors"][0]["code"])


def small_manifest(emu: EmulatorServer, seed: str, **extra: Any) -> bytes:
    """An OCI image manifest whose config blob exists; `extra` adds fields (subject, ...)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    digest = emu.push_blob(config)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest,
            "size": len(config),
        },
        "layers": [],
        **extra,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def put_manifest(emu: EmulatorServer, repo: str, ref: str, body: bytes) -> Any:
    return http(
        emu,
        "PUT",
        f"/v2/{repo}/manifests/{ref}",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
        auth=admin(emu),
    )


# -- 1. the page past the end ----------------------------------------------------------------


def test_empty_pages_leave_the_list_key_out(emulator: EmulatorServer) -> None:
    auth = admin(emulator)
    full = http(emulator, "GET", "/acr/v1/hello-world/_tags?n=100", auth=auth).json()
    last = full["tags"][-1]["name"]
    past = http(emulator, "GET", f"/acr/v1/hello-world/_tags?last={last}&n=100", auth=auth)
    assert past.status_code == 200 and "Link" not in past.headers
    assert past.json() == {"registry": emulator.login_server, "imageName": "hello-world"}
    ms = http(emulator, "GET", "/acr/v1/hello-world/_manifests?n=100", auth=auth).json()
    last_digest = ms["manifests"][-1]["digest"]
    past = http(
        emulator, "GET", f"/acr/v1/hello-world/_manifests?last={last_digest}&n=100", auth=auth
    )
    assert past.status_code == 200 and "manifests" not in past.json()


def test_sdk_lists_a_repository_with_nothing_listable(emulator_factory: Any) -> None:
    hidden = {"name": "t", "changeableAttributes": {"listEnabled": False}}
    emu = emulator_factory(
        {
            "repositories": {
                "quiet": {
                    "manifests": [
                        {
                            "id": "a",
                            "changeableAttributes": {"listEnabled": False},
                            "tags": [hidden],
                        }
                    ]
                }
            }
        }
    )
    r = http(emu, "GET", "/acr/v1/quiet/_tags", auth=admin(emu))
    assert r.status_code == 200 and "tags" not in r.json()
    with client(emu) as c:
        assert list(c.list_tag_properties("quiet")) == []
        assert list(c.list_manifest_properties("quiet")) == []


# -- 2. references only on the single-manifest view ------------------------------------------


def test_manifest_list_items_carry_no_references(emulator: EmulatorServer) -> None:
    auth = admin(emulator)
    items = http(emulator, "GET", "/acr/v1/team%2Fweb/_manifests", auth=auth).json()["manifests"]
    index = next(m for m in items if m.get("tags") == ["1.0"])
    assert all("references" not in m for m in items)
    one = http(emulator, "GET", f"/acr/v1/team%2Fweb/_manifests/{index['digest']}", auth=auth)
    refs = one.json()["manifest"]["references"]
    assert {r["architecture"] for r in refs} == {"amd64", "arm64"}


# -- 3. HEAD on /acr/v1 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/acr/v1/hello-world", "/acr/v1/hello-world/_tags/v1", "/acr/v1/hello-world/_tags"]
)
def test_head_answers_like_get_without_a_body(emulator: EmulatorServer, path: str) -> None:
    get = http(emulator, "GET", path, auth=admin(emulator))
    head = http(emulator, "HEAD", path, auth=admin(emulator))
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(get.content))
    assert head.headers["Content-Type"] == get.headers["Content-Type"]


def test_head_on_a_manifest_and_on_missing_items(emulator: EmulatorServer) -> None:
    auth = admin(emulator)
    digest = http(emulator, "GET", "/acr/v1/hello-world/_tags/v1", auth=auth).json()["tag"][
        "digest"
    ]
    head = http(emulator, "HEAD", f"/acr/v1/hello-world/_manifests/{digest}", auth=auth)
    assert head.status_code == 200 and head.content == b""
    assert http(emulator, "HEAD", "/acr/v1/hello-world/_tags/nope", auth=auth).status_code == 404
    assert http(emulator, "HEAD", "/acr/v1/nope", auth=auth).status_code == 404
    assert http(emulator, "HEAD", "/acr/v1/hello-world").status_code == 401


# -- 4, 5. repository locks and ACR's refusal ------------------------------------------------


def lock_repo(emu: EmulatorServer, repo: str, **attrs: bool) -> dict[str, Any]:
    r = http(emu, "PATCH", f"/acr/v1/{repo}", json=attrs, auth=admin(emu))
    assert r.status_code == 200
    return dict(r.json()["changeableAttributes"])


def test_write_locked_repository_refuses_pushes_and_deletes(emulator: EmulatorServer) -> None:
    auth = admin(emulator)
    assert lock_repo(emulator, "hello-world", writeEnabled=False)["writeEnabled"] is False
    body = small_manifest(emulator, "new")
    pushed = put_manifest(emulator, "hello-world", "v9", body)
    assert pushed.status_code == 405 and code(pushed) == DISALLOWED
    upload = http(emulator, "POST", "/v2/hello-world/blobs/uploads/", auth=auth)
    assert upload.status_code == 405 and code(upload) == DISALLOWED
    deleted = http(emulator, "DELETE", "/acr/v1/hello-world/_tags/v1", auth=auth)
    assert deleted.status_code == 405 and code(deleted) == DISALLOWED
    assert "disallowed" in deleted.json()["errors"][0]["message"]
    state = emulator.dump()["repositories"]["hello-world"]
    with client(emulator) as c, pytest.raises(HttpResponseError) as err:
        c.delete_manifest("hello-world", state["tags"]["v2"]["digest"])
    assert err.value.status_code == 405
    after = emulator.dump()["repositories"]["hello-world"]
    assert set(after["tags"]) == set(state["tags"]) and "v9" not in after["tags"]
    assert after["manifests"].keys() == state["manifests"].keys()
    lock_repo(emulator, "hello-world", writeEnabled=True)
    assert put_manifest(emulator, "hello-world", "v9", body).status_code == 201
    assert http(emulator, "DELETE", "/acr/v1/hello-world/_tags/v1", auth=auth).status_code == 202


def test_delete_locked_repository_refuses_deletes_but_takes_pushes(
    emulator: EmulatorServer,
) -> None:
    auth = admin(emulator)
    lock_repo(emulator, "hello-world", deleteEnabled=False)
    r = http(emulator, "DELETE", "/acr/v1/hello-world/_tags/v1", auth=auth)
    assert r.status_code == 405 and code(r) == DISALLOWED
    r = http(emulator, "DELETE", "/acr/v1/hello-world", auth=auth)
    assert r.status_code == 405 and code(r) == DISALLOWED
    assert put_manifest(emulator, "hello-world", "v9", small_manifest(emulator, "x")).ok
    assert {"v1", "v9"} <= set(emulator.dump()["repositories"]["hello-world"]["tags"])


def test_list_disabled_repository_leaves_both_catalogs(emulator: EmulatorServer) -> None:
    auth = admin(emulator)
    lock_repo(emulator, "hello-world", listEnabled=False)
    assert http(emulator, "GET", "/acr/v1/_catalog", auth=auth).json()["repositories"] == [
        "team/web"
    ]
    assert http(emulator, "GET", "/v2/_catalog", auth=auth).json()["repositories"] == ["team/web"]
    with client(emulator) as c:
        assert list(c.list_repository_names(results_per_page=1)) == ["team/web"]
        # still there, and readable by name
        assert c.get_repository_properties("hello-world").can_list is False


def test_read_disabled_repository_and_tag_refuse_pulls(emulator: EmulatorServer) -> None:
    auth = admin(emulator)
    ok = http(emulator, "GET", "/v2/hello-world/manifests/v1", auth=auth)
    assert ok.status_code == 200
    r = http(
        emulator, "PATCH", "/acr/v1/hello-world/_tags/v2", json={"readEnabled": False}, auth=auth
    )
    assert r.status_code == 200
    r = http(emulator, "GET", "/v2/hello-world/manifests/v2", auth=auth)
    assert r.status_code == 405 and code(r) == DISALLOWED
    assert http(emulator, "GET", "/v2/hello-world/manifests/v1", auth=auth).status_code == 200
    lock_repo(emulator, "hello-world", readEnabled=False)
    with client(emulator) as c, pytest.raises(HttpResponseError) as err:
        c.get_manifest("hello-world", "v1")
    assert err.value.status_code == 405
    manifests = emulator.dump()["repositories"]["hello-world"]["manifests"]
    digest = next(iter(manifests))
    body = http(emulator, "GET", f"/acr/v1/hello-world/_manifests/{digest}", auth=auth)
    assert body.status_code == 200
    blob = emulator.push_blob(b"layer bytes")
    r = http(emulator, "GET", f"/v2/hello-world/blobs/{blob}", auth=auth)
    assert r.status_code == 405 and code(r) == DISALLOWED
    # metadata stays readable: only pulls are refused
    assert http(emulator, "GET", "/acr/v1/hello-world/_tags", auth=auth).status_code == 200


def test_locks_from_the_scenario_are_enforced(emulator_factory: Any) -> None:
    emu = emulator_factory(
        {
            "repositories": {
                "frozen": {"locked": True, "manifests": [{"id": "a", "tags": ["v1"]}]},
                "secret": {
                    "changeableAttributes": {"listEnabled": False, "readEnabled": False},
                    "manifests": [{"id": "a", "tags": ["v1"]}],
                },
            }
        }
    )
    auth = admin(emu)
    assert http(emu, "GET", "/acr/v1/_catalog", auth=auth).json()["repositories"] == ["frozen"]
    r = http(emu, "DELETE", "/acr/v1/frozen/_tags/v1", auth=auth)
    assert r.status_code == 405 and code(r) == DISALLOWED
    assert put_manifest(emu, "frozen", "v2", small_manifest(emu, "f")).status_code == 405
    assert http(emu, "GET", "/v2/secret/manifests/v1", auth=auth).status_code == 405
    attrs = http(emu, "GET", "/acr/v1/frozen", auth=auth).json()["changeableAttributes"]
    assert attrs == {
        "deleteEnabled": False,
        "writeEnabled": False,
        "readEnabled": True,
        "listEnabled": True,
    }


# -- 6. referrers ----------------------------------------------------------------------------


def test_push_with_subject_answers_oci_subject_and_annotations_are_listed(
    emulator: EmulatorServer,
) -> None:
    subject_body = small_manifest(emulator, "subject")
    subject = put_manifest(emulator, "refs", "v1", subject_body).headers["Docker-Content-Digest"]
    plain = put_manifest(emulator, "refs", "v2", small_manifest(emulator, "plain"))
    assert "OCI-Subject" not in plain.headers
    sbom = small_manifest(
        emulator,
        "sbom",
        artifactType="application/spdx+json",
        subject={"mediaType": OCI_MANIFEST, "digest": subject, "size": len(subject_body)},
        annotations={"org.opencontainers.image.created": "2024-05-01T00:00:00Z"},
    )
    digest = "sha256:" + hashlib.sha256(sbom).hexdigest()
    r = put_manifest(emulator, "refs", digest, sbom)
    assert r.status_code == 201 and r.headers["OCI-Subject"] == subject
    listed = http(emulator, "GET", f"/v2/refs/referrers/{subject}", auth=admin(emulator)).json()
    assert listed["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(sbom),
            "artifactType": "application/spdx+json",
            "annotations": {"org.opencontainers.image.created": "2024-05-01T00:00:00Z"},
        }
    ]


# -- 7. uploads ------------------------------------------------------------------------------


def test_chunked_upload_rules(emulator: EmulatorServer) -> None:
    auth = admin(emulator)
    start = http(emulator, "POST", "/v2/up/blobs/uploads/", auth=auth)
    assert start.status_code == 202
    where = start.headers["Location"]
    chunk = {"Content-Type": "application/octet-stream"}
    first = http(
        emulator,
        "PATCH",
        where,
        data=b"a" * 10,
        headers={**chunk, "Content-Range": "0-9"},
        auth=auth,
    )
    assert first.status_code == 202 and first.headers["Range"] == "0-9"
    again = http(
        emulator,
        "PATCH",
        where,
        data=b"a" * 10,
        headers={**chunk, "Content-Range": "0-9"},
        auth=auth,
    )
    assert again.status_code == 416  # a repeated chunk
    skipped = http(
        emulator,
        "PATCH",
        where,
        data=b"b" * 5,
        headers={**chunk, "Content-Range": "20-24"},
        auth=auth,
    )
    assert skipped.status_code == 416  # out of order
    status = http(emulator, "GET", where, auth=auth)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-9" and status.headers["Location"] == where
    data = b"a" * 10 + b"b" * 5
    second = http(
        emulator,
        "PATCH",
        where,
        data=b"b" * 5,
        headers={**chunk, "Content-Range": "10-14"},
        auth=auth,
    )
    assert second.status_code == 202 and second.headers["Range"] == "0-14"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = http(emulator, "PUT", f"{where}?digest={digest}", auth=auth)
    assert done.status_code == 201
    blob = http(emulator, "GET", f"/v2/up/blobs/{digest}", auth=auth)
    assert blob.content == data
    bad_range = http(
        emulator, "GET", f"/v2/up/blobs/{digest}", headers={"Range": "bytes=5-0"}, auth=auth
    )
    assert bad_range.status_code == 416


def test_cancelled_upload_is_gone(emulator: EmulatorServer) -> None:
    auth = admin(emulator)
    where = http(emulator, "POST", "/v2/up/blobs/uploads/", auth=auth).headers["Location"]
    assert http(emulator, "DELETE", where, auth=auth).status_code == 204
    gone = http(emulator, "GET", where, auth=auth)
    assert gone.status_code == 404 and code(gone) == "BLOB_UPLOAD_UNKNOWN"
    assert http(emulator, "PATCH", where, data=b"x", auth=auth).status_code == 404


# -- 9. names --------------------------------------------------------------------------------


def test_names_outside_the_grammar_are_refused(emulator: EmulatorServer) -> None:
    body = small_manifest(emulator, "n")
    upper = put_manifest(emulator, "Scratch/Upper", "v1", body)
    assert upper.status_code == 400 and code(upper) == "NAME_INVALID"
    bad_tag = put_manifest(emulator, "scratch", "-bad!tag", body)
    assert bad_tag.status_code == 400 and code(bad_tag) == "TAG_INVALID"
    upload = http(emulator, "POST", "/v2/Scratch/Upper/blobs/uploads/", auth=admin(emulator))
    assert upload.status_code == 400 and code(upload) == "NAME_INVALID"
    assert put_manifest(emulator, "scratch/lower_ok.1", "Good_Tag-1.0", body).status_code == 201
    assert set(emulator.dump()["repositories"]) == {"hello-world", "team/web", "scratch/lower_ok.1"}


# -- 11. no DELETE under /acr/v1/{repo}/_manifests -------------------------------------------


def test_acr_v1_manifest_delete_is_not_served(emulator: EmulatorServer) -> None:
    auth = admin(emulator)
    digest = http(emulator, "GET", "/acr/v1/hello-world/_tags/v1", auth=auth).json()["tag"][
        "digest"
    ]
    r = http(emulator, "DELETE", f"/acr/v1/hello-world/_manifests/{digest}", auth=auth)
    assert r.status_code == 405 and code(r) == "UNSUPPORTED"
    assert digest in emulator.dump()["repositories"]["hello-world"]["manifests"]


async def test_purge_deletes_manifests_through_v2_only(
    emulator: EmulatorServer, identity_endpoint: Any
) -> None:
    await purge(emulator, "acr purge --filter 'hello-world:.*' --ago 30d --untagged", dry_run=False)
    deletes = [e["path"] for e in emulator.request_log() if e["method"] == "DELETE"]
    assert any(p.startswith("/v2/hello-world/manifests/sha256:") for p in deletes)
    assert not [p for p in deletes if "/_manifests" in p]


async def test_purge_learns_index_children_from_the_index_body(
    emulator: EmulatorServer, identity_endpoint: Any
) -> None:
    """The listing has no `references`: the engine must fetch the index to keep its children."""
    before = emulator.dump()["repositories"]["team/web"]["manifests"]
    index = next(d for d, m in before.items() if m["tags"] == ["1.0"])
    await purge(emulator, "acr purge --filter 'team/web:^none$' --ago 1d --untagged", dry_run=False)
    after = emulator.dump()["repositories"]["team/web"]["manifests"]
    assert after.keys() == before.keys()  # children of the tagged index and its signature stay
    gets = [e["path"] for e in emulator.request_log() if e["method"] == "GET"]
    assert f"/v2/team/web/manifests/{index}" in gets
