"""A plain OCI reader, independent of the engine: proves every surviving tag still pulls."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp

from purge.model import (
    INDEX_MEDIA_TYPES,
    KNOWN_MEDIA_TYPES,
    short_digest,
)
from purge.report import Report

#: Accept every manifest type, as a pulling client does; the emulator serves the stored type.
MANIFEST_ACCEPT = ", ".join(sorted(KNOWN_MEDIA_TYPES))


class PullError(Exception):
    """A pull step failed: missing, unreadable, or content that does not match its digest."""


class RegistryReader:
    """What a pulling client does, over plain /v2 HTTP with the admin user and the CA.

    Deliberately not the engine's client: the verification must not share a bug with what it
    checks. Every body is checked against its digest.
    """

    def __init__(self, endpoint: str, ca_file: str, username: str, password: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=ca_file)
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Basic {credentials}"},
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def close(self) -> None:
        await self._session.close()

    async def _get(self, path: str, accept: str | None = None) -> tuple[bytes, Any]:
        headers = {"Accept": accept} if accept else {}
        url = urljoin(self.endpoint + "/", path.lstrip("/"))
        async with self._session.get(url, headers=headers, ssl=self._ssl) as response:
            body = await response.read()
            if response.status != 200:
                raise PullError(f"GET {path}: HTTP {response.status} {body[:200]!r}")
            return body, response.headers

    async def _paged(self, path: str, key: str) -> list[str]:
        items: list[str] = []
        next_path: str | None = path
        while next_path is not None:
            body, headers = await self._get(next_path)
            items += json.loads(body).get(key) or []
            link = headers.get("Link", "")
            match = re.match(r"\s*<([^>]+)>", link)
            next_path = match.group(1) if match else None
        return items

    async def repositories(self) -> list[str]:
        return await self._paged("/v2/_catalog?n=1000", "repositories")

    async def tags(self, repository: str) -> list[str]:
        return await self._paged(f"/v2/{_q(repository)}/tags/list?n=1000", "tags")

    async def manifest(self, repository: str, reference: str) -> tuple[str, str, dict[str, Any]]:
        """(digest, media type, parsed body); the body must hash to its digest."""
        path = f"/v2/{_q(repository)}/manifests/{_q(reference)}"
        body, headers = await self._get(path, MANIFEST_ACCEPT)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        served = headers.get("Docker-Content-Digest")
        if reference.startswith("sha256:") and digest != reference:
            raise PullError(f"{repository}@{reference}: body hashes to {digest}")
        if served is not None and served != digest:
            raise PullError(f"{repository}:{reference}: body hashes to {digest}, header {served}")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise PullError(f"{repository}:{reference}: manifest is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise PullError(f"{repository}:{reference}: manifest is not a JSON object")
        media_type = document.get("mediaType") or headers.get("Content-Type", "")
        return digest, str(media_type), document

    async def referrers(self, repository: str, digest: str) -> list[str]:
        body, _ = await self._get(f"/v2/{_q(repository)}/referrers/{_q(digest)}")
        return [str(item["digest"]) for item in json.loads(body).get("manifests") or []]

    async def blob(self, repository: str, digest: str) -> int:
        body, _ = await self._get(f"/v2/{_q(repository)}/blobs/{_q(digest)}")
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if actual != digest:
            raise PullError(f"{repository} blob {digest}: content hashes to {actual}")
        return len(body)


def _q(text: str) -> str:
    return quote(text, safe="/")


@dataclass
class Verification:
    """What the pull check fetched and what failed; ok only when nothing failed."""

    tags: int = 0
    manifests: int = 0
    referrers: int = 0
    blobs: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tags": self.tags,
            "manifests": self.manifests,
            "referrers": self.referrers,
            "blobs": self.blobs,
            "problems": list(self.problems),
        }


async def verify_pulls(reader: RegistryReader) -> Verification:
    """Pull every tag of every repository completely, as a client would after the purge.

    A tag pulls when its manifest, every manifest an index points at (at any depth), every
    referrer of each of those (signatures, SBOMs, and their referrers) and every blob they name
    can be fetched and match their digests.
    """
    result = Verification()
    for repository in await reader.repositories():
        seen: set[str] = set()
        for tag in await reader.tags(repository):
            result.tags += 1
            try:
                digest, media_type, document = await reader.manifest(repository, tag)
            except PullError as exc:
                result.problems.append(f"{repository}:{tag}: {exc}")
                continue
            await _verify_graph(reader, repository, digest, media_type, document, seen, result)
    return result


async def _verify_graph(
    reader: RegistryReader,
    repository: str,
    digest: str,
    media_type: str,
    document: dict[str, Any],
    seen: set[str],
    result: Verification,
) -> None:
    if digest in seen:
        return
    seen.add(digest)
    result.manifests += 1
    for blob in _blob_digests(document):
        try:
            await reader.blob(repository, blob)
            result.blobs += 1
        except PullError as exc:
            result.problems.append(f"{repository}@{short_digest(digest)}: {exc}")
    edges: list[tuple[str, bool]] = []
    if media_type in INDEX_MEDIA_TYPES:
        edges += [(str(m["digest"]), False) for m in document.get("manifests") or []]
    try:
        edges += [(d, True) for d in await reader.referrers(repository, digest)]
    except PullError as exc:
        result.problems.append(f"{repository}@{short_digest(digest)}: referrers: {exc}")
    for child, is_referrer in edges:
        if child in seen:
            continue
        try:
            child_digest, child_type, child_doc = await reader.manifest(repository, child)
        except PullError as exc:
            what = "referrer" if is_referrer else "child"
            result.problems.append(f"{repository}@{short_digest(digest)}: {what} {child}: {exc}")
            continue
        if is_referrer:
            result.referrers += 1
        await _verify_graph(reader, repository, child_digest, child_type, child_doc, seen, result)


def _blob_digests(document: dict[str, Any]) -> list[str]:
    config = document.get("config")
    blobs = [str(config["digest"])] if isinstance(config, dict) and "digest" in config else []
    for layer in document.get("layers") or []:
        if isinstance(layer, dict) and "digest" in layer:
            blobs.append(str(layer["digest"]))
    return blobs


def plan_differences(dry: Report, real: Report) -> list[str]:
    """Where the real run deleted something other than what the dry run planned."""

    def deleted(report: Report) -> set[str]:
        tags = {f"{t['repository']}:{t['tag']}" for t in report.deleted_tags}
        return tags | {f"{m['repository']}@{m['digest']}" for m in report.deleted_manifests}

    planned, done = deleted(dry), deleted(real)
    return [f"deleted but not planned: {item}" for item in sorted(done - planned)] + [
        f"planned but not deleted: {item}" for item in sorted(planned - done)
    ]
