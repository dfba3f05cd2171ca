"""Replay the recordings of real ACR traffic against the emulator and compare the answers.

For each recording: seed an emulator with the repositories, tags and manifests it mentions,
replay its requests in order (with our own credentials and upload locations), and compare the
status code, WWW-Authenticate shape and scope, Link shape, Content-Type, Docker-Content-Digest
presence and JSON keys. Digests differ by construction (content is ours), so they are mapped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests

from acr_emulator.testing import EmulatorServer

#: CI lays ../shared/ beside the clone; a user's clone has no such folder, so the test skips.
RECORDINGS = Path(__file__).resolve().parents[3] / "shared" / "acr-wire-recordings"
pytestmark = pytest.mark.skipif(
    not RECORDINGS.is_dir(),
    reason=f"no ACR wire recordings at {RECORDINGS} (CI has ../shared/ beside the clone)",
)
FILES = sorted(p.relative_to(RECORDINGS).as_posix() for p in RECORDINGS.rglob("*.json"))
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
OPTIONAL_KEYS = {
    "tags",
    "configMediaType",
    "architecture",
    "os",
    "references",
    "quarantineDetails",
    "quarantineState",
    "detail",
    "teleportEnabled",
    "tagsDeleted",
}

BLOB_REDIRECT = "GET /v2/{repo}/blobs/{digest}: ACR redirects (307) to blob storage; we serve 200"
# Recordings whose replay differs from real ACR, and why (checked: they must still differ).
KNOWN_DIFFERENCES = {
    "js/containerregistrycontentclient/recording_can_upload_blob.json": BLOB_REDIRECT,
    "js/containerregistrycontentclient/recording_can_download_docker_manifest.json": BLOB_REDIRECT,
    "java/session-records/ContainerRegistryBlobClientIntegrationTests"
    ".downloadManifestIncompatibleType[1].json": (
        "ACR converts to a schema-1 signed manifest; the emulator never converts"
    ),
    "java/session-records/ContainerRegistryBlobClientIntegrationTests"
    ".downloadManifestListManifest[1].json": (
        "seeded content: the recorded docker manifest list is replaced by our own image, so "
        "its Content-Type and digest (and the later DELETE of the recorded digest) differ"
    ),
}


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Normalise test-proxy and Java records to {method, url, status, headers, body, req}."""
    out = []
    for e in doc.get("Entries") or []:
        out.append(
            {
                "method": e["RequestMethod"],
                "url": e["RequestUri"],
                "status": e["StatusCode"],
                "headers": e["ResponseHeaders"],
                "body": e["ResponseBody"],
                "req": e.get("RequestBody"),
                "req_headers": e.get("RequestHeaders", {}),
            }
        )
    for e in doc.get("networkCallRecords") or []:
        resp = e.get("Response")
        if not resp:
            continue
        body: Any = resp.get("Body")
        with contextlib.suppress(ValueError):
            body = json.loads(body) if body else None
        headers = {k: v for k, v in resp.items() if k not in ("StatusCode", "Body")}
        out.append(
            {
                "method": e["Method"],
                "url": e["Uri"],
                "status": int(resp["StatusCode"]),
                "headers": headers,
                "body": body,
                "req": None,
                "req_headers": {},
            }
        )
    return out


def _header(headers: dict[str, Any], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v[0] if isinstance(v, list) else v
    return None


def _path(url: str) -> str:
    return unquote(urlsplit(url).path)


def _scenario(entries: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Repositories, tags and digests the recording mentions -> scenario + digest ids."""
    repos: dict[str, dict[str, set[str]]] = {}
    for e in entries:
        m = re.match(
            r"^/(?:acr/v1|v2)/(.+?)(?:/(_tags|_manifests|manifests|blobs|tags)(?:/(.*))?)?$",
            _path(e["url"]),
        )
        if not m or m.group(1) in ("_catalog", ""):
            continue
        repo = repos.setdefault(m.group(1), {"tags": set(), "digests": set()})
        ref = m.group(3) or ""
        pushed = e["method"] == "PUT" and e["status"] == 201
        is_tag = ref and not ref.startswith(("sha256:", "uploads"))
        if m.group(2) in ("_tags", "manifests") and is_tag and not pushed:
            repo["tags"].add(ref)
        if (
            m.group(2) in ("_manifests", "manifests")
            and DIGEST.fullmatch(ref)
            and e["status"] != 201
        ):
            repo["digests"].add(ref)
        body = json.dumps(e["body"]) if isinstance(e["body"], (dict, list)) else ""
        if isinstance(e["body"], dict):
            for t in e["body"].get("tags") or []:
                if isinstance(t, dict) and "name" in t:
                    repo["tags"].add(t["name"])
        if m.group(2) in ("_manifests", "_tags"):
            repo["digests"].update(DIGEST.findall(body))
    for e in entries:  # catalog listings name repositories too
        if isinstance(e["body"], dict) and _path(e["url"]).endswith("_catalog"):
            for r in e["body"].get("repositories") or []:
                repos.setdefault(r, {"tags": set(), "digests": set()})
    scenario: dict[str, Any] = {"repositories": {}}
    ids: dict[str, str] = {}
    missing = {
        _path(e["url"]).split("/acr/v1/")[-1]
        for e in entries
        if e["status"] == 404 and "NAME_UNKNOWN" in json.dumps(e["body"])
    }
    for name, info in repos.items():
        if name in missing:
            continue
        manifests = []
        for i, d in enumerate(sorted(info["digests"]) or ["_"]):
            ids[f"{name}@{d}"] = f"m{i}"
            manifests.append({"id": f"m{i}", "kind": "image", "updated": f"-{i + 1}d", "tags": []})
        for j, t in enumerate(sorted(info["tags"])):
            manifests[j % len(manifests)]["tags"].append({"name": t, "updated": f"-{j + 1}h"})
        for k in range(3):  # filler after the recorded items, so recorded pages have a next page
            manifests.append(
                {"id": f"filler{k}", "kind": "image", "seed": "f", "tags": [f"zzz-filler-{k}"]}
            )
        scenario["repositories"][name] = {"manifests": manifests}
    return scenario, ids


def _shape_link(link: str | None) -> str | None:
    return (
        re.sub(r"last=[^&>]*", "last=X", re.sub(r"/acr/v1/[^?]+/(_\w+)", r"/acr/v1/R/\1", link))
        if link
        else None
    )


def _shape_challenge(value: str | None) -> str | None:
    if value is None:
        return None
    value = re.sub(r'(realm|service)="[^"]*"', r'\1="H"', value)
    # ACR itself sends both "pull,push" and "push,pull": compare the set of actions.
    return re.sub(
        r'scope="([^"]*):([^":]*)"',
        lambda m: f'scope="{m.group(1)}:{",".join(sorted(m.group(2).split(",")))}"',
        value,
    )


def _keys(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _keys(v) for k, v in body.items() if k not in OPTIONAL_KEYS}
    if isinstance(body, list):
        return _keys(body[0]) if body and isinstance(body[0], (dict, list)) else "list"
    return "value"


def replay(rel: str) -> list[str]:
    """Differences found (empty: the emulator answered like ACR)."""
    entries = _entries(json.loads((RECORDINGS / rel).read_text()))
    anonymous = any("grant_type=password" in str(e["req"]) for e in entries)
    scenario, ids = _scenario(entries)
    diffs: list[str] = []
    with EmulatorServer(scenario=scenario, anonymous_pull=anonymous) as emu:
        s = requests.Session()
        s.verify = emu.ca_file
        s.trust_env = False
        digest_map = {}
        state = emu.dump()["repositories"]
        for key, mid in ids.items():
            repo, rec = key.split("@")
            if rec != "_":
                digest_map[rec] = sorted(state[repo]["manifests"])[int(mid[1:])]
        refresh = ""
        token = ""
        upload = ""
        for i, e in enumerate(entries):
            parts = urlsplit(e["url"])
            if not parts.hostname or not parts.hostname.endswith(".azurecr.io"):
                continue
            raw_path = parts.path
            query = parts.query
            if "/blobs/uploads/" in raw_path and raw_path.rstrip("/").split("/")[-1] != "uploads":
                if not upload:
                    continue
                up = urlsplit(upload)
                raw_path = up.path
                query = "&".join(
                    q
                    for q in [
                        up.query,
                        "&".join(p for p in query.split("&") if p.startswith("digest=")),
                    ]
                    if q
                )
            for rec, ours in digest_map.items():
                raw_path = raw_path.replace(rec, ours).replace(rec.replace(":", "%3A"), ours)
                query = query.replace(rec.replace(":", "%3A"), ours.replace(":", "%3A"))
            url = f"{emu.endpoint}{raw_path}" + (f"?{query}" if query else "")
            headers: dict[str, str] = {}
            data: Any = None
            challenge = _header(e["headers"], "WWW-Authenticate")
            if raw_path == "/oauth2/exchange":
                ok = e["status"] == 200
                data = {
                    "grant_type": "access_token",
                    "service": emu.login_server,
                    "access_token": "aad" if ok else "",
                }
            elif raw_path == "/oauth2/token":
                form = dict(p.split("=", 1) for p in str(e["req"] or "").split("&") if "=" in p)
                scope = unquote(form.get("scope", "")).replace("+", " ")
                data = {"service": emu.login_server, "scope": scope}
                if form.get("grant_type") == "password":
                    data["grant_type"] = "password"
                else:
                    data.update(grant_type="refresh_token", refresh_token=refresh)
            elif e["status"] == 401 and challenge and "insufficient_scope" in challenge:
                if not anonymous:
                    bad = s.post(
                        f"{emu.endpoint}/oauth2/token",
                        data={
                            "grant_type": "refresh_token",
                            "service": emu.login_server,
                            "scope": "repository:unrelated:pull",
                            "refresh_token": refresh,
                        },
                    ).json()
                    headers["Authorization"] = f"Bearer {bad['access_token']}"
                else:
                    headers["Authorization"] = f"Bearer {token}"
            elif e["status"] == 401 and challenge:
                pass  # replay unauthenticated: expect the challenge
            elif anonymous:
                headers["Authorization"] = f"Bearer {token}"
            else:
                basic = base64.b64encode(f"{emu.username}:{emu.password}".encode()).decode()
                headers["Authorization"] = f"Basic {basic}"
            if data is None and e["req"] is not None and e["method"] in ("PUT", "PATCH", "POST"):
                ct = _header(e["req_headers"], "Content-Type") or ""
                if isinstance(e["req"], (dict, list)):
                    data = json.dumps(e["req"], indent=3 if "docker" in ct else None).encode()
                    if "docker" in ct:
                        data += b"\n"
                elif isinstance(e["req"], str) and ct == "application/octet-stream":
                    data = base64.b64decode(e["req"])
                else:
                    data = str(e["req"]).encode()
                headers["Content-Type"] = ct
            r = s.request(e["method"], url, headers=headers, data=data, allow_redirects=False)
            if raw_path == "/oauth2/exchange" and r.ok:
                refresh = r.json()["refresh_token"]
            if raw_path == "/oauth2/token" and r.ok:
                token = r.json()["access_token"]
            if r.headers.get("Location", "").count("/blobs/uploads/"):
                upload = r.headers["Location"]
            where = f"#{i} {e['method']} {_path(e['url'])}"
            if r.status_code != e["status"]:
                diffs.append(f"{where}: status {r.status_code} != {e['status']} {r.text[:120]}")
                continue
            if _shape_challenge(r.headers.get("WWW-Authenticate")) != _shape_challenge(challenge):
                diffs.append(
                    f"{where}: WWW-Authenticate {r.headers.get('WWW-Authenticate')!r} "
                    f"!= {challenge!r}"
                )
            if _shape_link(r.headers.get("Link")) != _shape_link(_header(e["headers"], "Link")):
                diffs.append(
                    f"{where}: Link {r.headers.get('Link')!r} != {_header(e['headers'], 'Link')!r}"
                )
            rec_ct = _header(e["headers"], "Content-Type")
            if rec_ct and r.content and r.headers.get("Content-Type") != rec_ct:
                diffs.append(f"{where}: Content-Type {r.headers.get('Content-Type')} != {rec_ct}")
            if bool(r.headers.get("Docker-Content-Digest")) != bool(
                _header(e["headers"], "Docker-Content-Digest")
            ):
                diffs.append(f"{where}: Docker-Content-Digest presence differs")
            if isinstance(e["body"], dict) and e["status"] < 300:
                try:
                    ours = r.json()
                except ValueError:
                    diffs.append(f"{where}: body is not JSON")
                    continue
                if "schemaVersion" in e["body"]:
                    continue  # a manifest body: content is ours by design
                if _keys(ours) != _keys(e["body"]):
                    diffs.append(f"{where}: JSON keys {_keys(ours)} != {_keys(e['body'])}")
    return diffs


@pytest.mark.parametrize("rel", FILES)
def test_recording_replays_like_acr(rel: str) -> None:
    diffs = replay(rel)
    if rel in KNOWN_DIFFERENCES:
        assert diffs, f"{rel} now conforms: remove it from KNOWN_DIFFERENCES"
    else:
        assert diffs == [], "\n".join(diffs)
