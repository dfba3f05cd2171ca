"""Registry state and ACR's semantics, with no HTTP in sight.

Kept apart from the handlers so that scenarios, the control API and tests can drive the same
rules (delete cascades, locks, ordering) that clients see over the wire. Sorted views are
maintained incrementally with `bisect` so that paging through 20,000 tags while deleting them
never re-sorts a repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
KNOWN_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST})

MAX_PAGE = 1000  # ACR serves at most 1000 items per /acr/v1 listing page; larger n is clamped.
DEFAULT_PAGE = 100


def default_attrs() -> dict[str, bool]:
    return {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}


def iso(ts: float) -> str:
    """ACR's timestamp style: UTC, up to 7 fractional digits, trailing zeros dropped."""
    whole = int(ts)
    frac = f"{ts - whole:.7f}"[2:].rstrip("0")
    base = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryError(Exception):
    """An ACR error answer: HTTP status, ACR error code, message, optional detail."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.detail = status, code, message, detail
        self.challenge: str | None = None  # WWW-Authenticate value for 401 answers
        self.headers: dict[str, str] = {}  # more response headers (416: Range, Location)


#: The distribution spec's grammar for repository names and tags (ACR refuses others).
NAME_RE = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DISALLOWED_MESSAGE = (
    "The operation is disallowed on this registry, repository or image. View troubleshooting "
    "steps at https://aka.ms/acr/faq/#why-does-my-pull-or-push-request-fail-with-disallowed-operation-"
)


def locked_error() -> RegistryError:
    """ACR's answer to a delete, push or pull that a lock (changeableAttributes) forbids."""
    return RegistryError(405, "REGISTRY_DISALLOWED_OPERATION", DISALLOWED_MESSAGE, {})


def check_name(name: str) -> None:
    if len(name) > 255 or not NAME_RE.match(name):
        raise RegistryError(400, "NAME_INVALID", "invalid repository name", {"name": name})


def check_tag(tag: str) -> None:
    if not TAG_RE.match(tag):
        raise RegistryError(400, "TAG_INVALID", "manifest tag did not match URI", {"tag": tag})


@dataclass
class Manifest:
    digest: str
    body: bytes
    media_type: str
    created: float
    updated: float
    config_media_type: str | None = None
    artifact_type: str | None = None
    subject: str | None = None
    references: list[dict[str, Any]] = field(default_factory=list)
    architecture: str | None = None
    os: str | None = None
    image_size: int = 0
    attrs: dict[str, bool] = field(default_factory=default_attrs)
    tags: set[str] = field(default_factory=set)
    annotations: dict[str, str] = field(default_factory=dict)
    corrupt: bool = False  # serve a body whose sha256 is not the digest
    unreadable: bool = False  # GET of the body answers 500

    def served_body(self) -> bytes:
        return self.body + b" " if self.corrupt else self.body


@dataclass
class Tag:
    name: str
    digest: str
    created: float
    updated: float
    attrs: dict[str, bool] = field(default_factory=default_attrs)


def is_locked(attrs: dict[str, bool]) -> bool:
    return not attrs.get("deleteEnabled", True) or not attrs.get("writeEnabled", True)


class SortedKeys:
    """A sorted list of keys with O(log n) search and cheap insert/remove."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, key: Any) -> None:
        insort(self.items, key)

    def remove(self, key: Any) -> None:
        i = bisect_left(self.items, key)
        if i < len(self.items) and self.items[i] == key:
            del self.items[i]

    def after(self, key: Any | None, descending: bool) -> Iterator[Any]:
        """Keys strictly after `key` in the chosen direction (all when key is None)."""
        items = self.items
        if not descending:
            start = 0 if key is None else bisect_right(items, key)
            for i in range(start, len(items)):
                yield items[i]
        else:
            end = len(items) if key is None else bisect_left(items, key)
            for i in range(end - 1, -1, -1):
                yield items[i]


class Repository:
    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.created = now
        self.updated = now
        self.attrs = default_attrs()
        self.tags: dict[str, Tag] = {}
        self.manifests: dict[str, Manifest] = {}
        self.referrers: dict[str, set[str]] = {}  # subject digest -> referrer digests
        self.blobs: set[str] = set()
        self.tag_names = SortedKeys()
        self.tag_times = SortedKeys()  # (updated, name)
        self.manifest_digests = SortedKeys()
        self.manifest_times = SortedKeys()  # (updated, digest)
        # Sort keys of deleted items, so a `last` cursor naming a deleted item still pages on.
        self.gone_tags: dict[str, float] = {}
        self.gone_manifests: dict[str, float] = {}

    def is_empty(self) -> bool:
        return not self.tags and not self.manifests

    def check_readable(self, ref: str) -> None:
        """Refuse a pull when the repository, the tag or the manifest has readEnabled false."""
        if not self.attrs.get("readEnabled", True):
            raise locked_error()
        tag = self.tags.get(ref)
        if tag is not None and not tag.attrs.get("readEnabled", True):
            raise locked_error()
        m = self.resolve(ref)
        if m is not None and not m.attrs.get("readEnabled", True):
            raise locked_error()

    def check_writable(self) -> None:
        if not self.attrs.get("writeEnabled", True):
            raise locked_error()

    # -- indexes -----------------------------------------------------------------------------
    def _index_tag(self, tag: Tag) -> None:
        self.tag_names.add(tag.name)
        self.tag_times.add((tag.updated, tag.name))

    def _unindex_tag(self, tag: Tag) -> None:
        self.tag_names.remove(tag.name)
        self.tag_times.remove((tag.updated, tag.name))

    def _index_manifest(self, m: Manifest) -> None:
        self.manifest_digests.add(m.digest)
        self.manifest_times.add((m.updated, m.digest))

    def _unindex_manifest(self, m: Manifest) -> None:
        self.manifest_digests.remove(m.digest)
        self.manifest_times.remove((m.updated, m.digest))

    def touch_manifest(self, m: Manifest, when: float) -> None:
        self._unindex_manifest(m)
        m.updated = when
        self._index_manifest(m)

    def touch_tag(self, t: Tag, when: float) -> None:
        self._unindex_tag(t)
        t.updated = when
        self._index_tag(t)

    # -- mutations ---------------------------------------------------------------------------
    def add_manifest(self, m: Manifest) -> Manifest:
        existing = self.manifests.get(m.digest)
        if existing is not None:
            return existing
        self.manifests[m.digest] = m
        self.gone_manifests.pop(m.digest, None)
        self._index_manifest(m)
        if m.subject:
            self.referrers.setdefault(m.subject, set()).add(m.digest)
        return m

    def set_tag(self, name: str, digest: str, when: float, *, created: float | None = None) -> Tag:
        m = self.manifests[digest]
        tag = self.tags.get(name)
        if tag is not None:
            if not tag.attrs.get("writeEnabled", True):
                raise locked_error()
            old = self.manifests.get(tag.digest)
            if old is not None:
                old.tags.discard(name)
            tag.digest = digest
            self.touch_tag(tag, when)
        else:
            tag = Tag(name, digest, created if created is not None else when, when)
            self.tags[name] = tag
            self.gone_tags.pop(name, None)
            self._index_tag(tag)
        m.tags.add(name)
        self.updated = max(self.updated, when)
        return tag

    def delete_tag(self, name: str) -> Tag:
        tag = self.tags.get(name)
        if tag is None:
            raise RegistryError(404, "TAG_UNKNOWN", "the specified tag does not exist")
        if is_locked(self.attrs) or is_locked(tag.attrs):
            raise locked_error()
        self._drop_tag(tag)
        return tag

    def _drop_tag(self, tag: Tag) -> None:
        del self.tags[tag.name]
        self._unindex_tag(tag)
        self.gone_tags[tag.name] = tag.updated
        m = self.manifests.get(tag.digest)
        if m is not None:
            m.tags.discard(tag.name)

    def delete_manifest(self, digest: str) -> tuple[list[str], list[str]]:
        """Delete a manifest, its tags and (recursively) its referrers, as ACR does.

        Refused when the manifest or any of its tags is locked; returns (digests, tags) removed.
        """
        m = self.manifests.get(digest)
        if m is None:
            raise RegistryError(404, "MANIFEST_UNKNOWN", f"manifest {digest} is not found")
        if (
            is_locked(self.attrs)
            or is_locked(m.attrs)
            or any(is_locked(self.tags[t].attrs) for t in m.tags)
        ):
            raise locked_error()
        removed: list[str] = []
        removed_tags: list[str] = []
        stack = [digest]
        while stack:
            d = stack.pop()
            cur = self.manifests.pop(d, None)
            if cur is None:
                continue
            self._unindex_manifest(cur)
            self.gone_manifests[d] = cur.updated
            for t in sorted(cur.tags):
                tag = self.tags.get(t)
                if tag is not None:
                    cur.tags.discard(t)
                    self._drop_tag(tag)
                    removed_tags.append(t)
            if cur.subject and cur.subject in self.referrers:
                self.referrers[cur.subject].discard(d)
                if not self.referrers[cur.subject]:
                    del self.referrers[cur.subject]
            stack.extend(self.referrers.pop(d, ()))
            removed.append(d)
        return removed, removed_tags

    # -- queries -----------------------------------------------------------------------------
    def resolve(self, ref: str) -> Manifest | None:
        if ref.startswith("sha256:"):
            return self.manifests.get(ref)
        tag = self.tags.get(ref)
        return self.manifests.get(tag.digest) if tag else None

    def page_tags(
        self, n: int, last: str | None, orderby: str | None, digest: str | None = None
    ) -> tuple[list[Tag], bool]:
        """One page of tags and whether more follow."""
        if digest is not None:
            m = self.manifests.get(digest)
            pool = [self.tags[t] for t in (m.tags if m else ())]
            if orderby in ("timedesc", "timeasc"):
                pool.sort(key=lambda t: (t.updated, t.name), reverse=orderby == "timedesc")
            else:
                pool.sort(key=lambda t: t.name)
            keys: Iterator[Any] = iter(pool)
            if last is not None:
                names = [t.name for t in pool]
                keys = iter(pool[names.index(last) + 1 :] if last in names else pool)
            return _take(keys, n, lambda t: t.attrs.get("listEnabled", True))
        if orderby in ("timedesc", "timeasc"):
            cursor = None
            if last is not None:
                known = self.tags.get(last)
                when = known.updated if known else self.gone_tags.get(last)
                if when is None:
                    return [], False
                cursor = (when, last)
            it = (self.tags[k[1]] for k in self.tag_times.after(cursor, orderby == "timedesc"))
        else:
            it = (self.tags[k] for k in self.tag_names.after(last, False))
        return _take(it, n, lambda t: t.attrs.get("listEnabled", True))

    def page_manifests(
        self, n: int, last: str | None, orderby: str | None
    ) -> tuple[list[Manifest], bool]:
        if orderby in ("timedesc", "timeasc"):
            cursor = None
            if last is not None:
                known = self.manifests.get(last)
                when = known.updated if known else self.gone_manifests.get(last)
                if when is None:
                    return [], False
                cursor = (when, last)
            desc = orderby == "timedesc"
            it = (self.manifests[k[1]] for k in self.manifest_times.after(cursor, desc))
        else:
            it = (self.manifests[k] for k in self.manifest_digests.after(last, False))
        return _take(it, n, lambda m: m.attrs.get("listEnabled", True))


def _take(it: Iterator[Any], n: int, visible: Any) -> tuple[list[Any], bool]:
    page: list[Any] = []
    for item in it:
        if not visible(item):
            continue
        if len(page) == n:
            return page, True
        page.append(item)
    return page, False


def clamp_page(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE
    try:
        n = int(raw)
    except ValueError:
        raise RegistryError(
            400, "PAGINATION_NUMBER_INVALID", f"invalid number of results requested: {raw!r}"
        ) from None
    if n < 1:
        raise RegistryError(
            400, "PAGINATION_NUMBER_INVALID", f"invalid number of results requested: {n}"
        )
    return min(n, MAX_PAGE)


def _platform(config: dict[str, Any]) -> tuple[str | None, str | None]:
    return config.get("architecture"), config.get("os")


class Registry:
    """All repositories and blobs of one emulated registry."""

    def __init__(self, now: float | None = None) -> None:
        self.clock_offset = 0.0
        self.repositories: dict[str, Repository] = {}
        self.catalog = SortedKeys()
        self.blobs: dict[str, bytes] = {}
        self.created = now if now is not None else time.time()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def repo(self, name: str) -> Repository:
        r = self.repositories.get(name)
        if r is None:
            raise RegistryError(
                404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name}
            )
        return r

    def ensure_repo(self, name: str, when: float | None = None) -> Repository:
        r = self.repositories.get(name)
        if r is None:
            r = Repository(name, when if when is not None else self.now())
            self.repositories[name] = r
            self.catalog.add(name)
        return r

    def drop_if_empty(self, name: str) -> None:
        r = self.repositories.get(name)
        if r is not None and r.is_empty():
            del self.repositories[name]
            self.catalog.remove(name)

    def visible_names(self, last: str | None) -> Iterator[str]:
        """Catalog names after `last`, without repositories whose listEnabled is false."""
        for name in self.catalog.after(last, False):
            if self.repositories[name].attrs.get("listEnabled", True):
                yield name

    def put_blob(self, data: bytes) -> str:
        d = sha256_digest(data)
        self.blobs[d] = data
        return d

    def describe(self, body: bytes, media_type: str | None) -> dict[str, Any]:
        """Parse a manifest body into the attributes ACR lists; raises MANIFEST_INVALID."""
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError(
                400, "MANIFEST_INVALID", "manifest invalid", {"Reason": {}}
            ) from None
        if not isinstance(doc, dict):
            raise RegistryError(400, "MANIFEST_INVALID", "manifest invalid", {"Reason": {}})
        declared = doc.get("mediaType")
        mt = media_type or declared
        if declared and media_type and declared != media_type:
            raise RegistryError(400, "MANIFEST_INVALID", "manifest invalid", {"Reason": {}})
        if not mt:
            mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
        info: dict[str, Any] = {"media_type": mt, "references": []}
        subject = doc.get("subject")
        info["subject"] = subject.get("digest") if isinstance(subject, dict) else None
        info["artifact_type"] = doc.get("artifactType")
        annotations = doc.get("annotations")
        info["annotations"] = dict(annotations) if isinstance(annotations, dict) else {}
        size = len(body)
        if isinstance(doc.get("manifests"), list):
            for child in doc["manifests"]:
                plat = child.get("platform") or {}
                info["references"].append(
                    {
                        "digest": child.get("digest"),
                        "architecture": plat.get("architecture"),
                        "os": plat.get("os"),
                    }
                )
        config = doc.get("config")
        if isinstance(config, dict):
            info["config_media_type"] = config.get("mediaType")
            size += int(config.get("size", 0))
            raw = self.blobs.get(config.get("digest", ""))
            if raw is not None and info["config_media_type"] in (OCI_CONFIG, DOCKER_CONFIG):
                with contextlib.suppress(ValueError, AttributeError):
                    info["architecture"], info["os"] = _platform(json.loads(raw))
        for layer in doc.get("layers") or []:
            if isinstance(layer, dict):
                size += int(layer.get("size", 0))
        info["image_size"] = size
        return info

    def push_manifest(
        self, repo_name: str, body: bytes, media_type: str | None, tag: str | None
    ) -> str:
        """Store a manifest as a /v2 PUT does; returns its digest."""
        check_name(repo_name)
        if tag is not None:
            check_tag(tag)
        existing = self.repositories.get(repo_name)
        if existing is not None:
            existing.check_writable()
        info = self.describe(body, media_type)
        digest = sha256_digest(body)
        now = self.now()
        repo = self.ensure_repo(repo_name, now)
        try:
            m = repo.manifests.get(digest)
            if m is None:
                if tag is not None:
                    t = repo.tags.get(tag)
                    if t is not None and not t.attrs.get("writeEnabled", True):
                        raise locked_error()
                m = Manifest(
                    digest=digest,
                    body=body,
                    media_type=info["media_type"],
                    created=now,
                    updated=now,
                    config_media_type=info.get("config_media_type"),
                    artifact_type=info.get("artifact_type"),
                    subject=info.get("subject"),
                    references=info["references"],
                    architecture=info.get("architecture"),
                    os=info.get("os"),
                    image_size=info["image_size"],
                    annotations=info["annotations"],
                )
                repo.add_manifest(m)
            elif not m.attrs.get("writeEnabled", True) and tag is not None:
                raise locked_error()
            if tag is not None:
                repo.set_tag(tag, digest, now)
                repo.touch_manifest(m, now)
        finally:
            self.drop_if_empty(repo_name)
        return digest

    def delete_manifest(self, repo_name: str, digest: str) -> tuple[list[str], list[str]]:
        repo = self.repo(repo_name)
        result = repo.delete_manifest(digest)
        self.drop_if_empty(repo_name)
        return result

    def delete_tag(self, repo_name: str, tag: str) -> Tag:
        repo = self.repo(repo_name)
        removed = repo.delete_tag(tag)
        self.drop_if_empty(repo_name)
        return removed

    def delete_repository(self, repo_name: str) -> tuple[list[str], list[str]]:
        repo = self.repo(repo_name)
        if is_locked(repo.attrs):
            raise locked_error()
        digests = sorted(repo.manifests)
        tags = sorted(repo.tags)
        del self.repositories[repo_name]
        self.catalog.remove(repo_name)
        return digests, tags

    # -- views -------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.catalog.items:
            r = self.repositories[name]
            out[name] = {
                "createdTime": iso(r.created),
                "lastUpdateTime": iso(r.updated),
                "changeableAttributes": dict(r.attrs),
                "tags": {
                    t.name: {
                        "digest": t.digest,
                        "createdTime": iso(t.created),
                        "lastUpdateTime": iso(t.updated),
                        "changeableAttributes": dict(t.attrs),
                    }
                    for t in (r.tags[k] for k in r.tag_names.items)
                },
                "manifests": {
                    m.digest: {
                        "mediaType": m.media_type,
                        "configMediaType": m.config_media_type,
                        "artifactType": m.artifact_type,
                        "subject": m.subject,
                        "references": [x["digest"] for x in m.references],
                        "tags": sorted(m.tags),
                        "imageSize": m.image_size,
                        "architecture": m.architecture,
                        "os": m.os,
                        "createdTime": iso(m.created),
                        "lastUpdateTime": iso(m.updated),
                        "changeableAttributes": dict(m.attrs),
                        "corrupt": m.corrupt,
                        "unreadable": m.unreadable,
                    }
                    for m in (r.manifests[k] for k in r.manifest_digests.items)
                },
            }
        return {"repositories": out}
