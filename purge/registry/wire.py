"""ACR's JSON -> the engine's model, and SDK errors -> the engine's errors."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.rest import AsyncHttpResponse

from purge.isotime import parse_utc
from purge.model import Manifest, ManifestBody, Tag
from purge.registry.protocol import ManifestUnreadable, NotFound, PermissionDenied, RegistryError

# ---------------------------------------------------------------- JSON -> model


def parse_time(value: object) -> datetime | None:
    """ACR's ISO-8601 (up to 7 fractional digits, `Z`) -> aware UTC datetime; else None."""
    return parse_utc(value)


def _flag(attributes: object, key: str) -> bool:
    """A lock flag; absent or malformed counts as locked (fail closed: never delete blindly)."""
    if not isinstance(attributes, dict):
        return False
    value = attributes.get(key)
    return value if isinstance(value, bool) else False


def tag_from_json(item: dict[str, Any]) -> Tag:
    attributes = item.get("changeableAttributes")
    return Tag(
        name=str(item["name"]),
        digest=str(item["digest"]),
        last_updated=parse_time(item.get("lastUpdateTime")),
        created=parse_time(item.get("createdTime")),
        delete_enabled=_flag(attributes, "deleteEnabled"),
        write_enabled=_flag(attributes, "writeEnabled"),
    )


def manifest_from_json(item: dict[str, Any]) -> Manifest:
    attributes = item.get("changeableAttributes")
    refs = item.get("references")
    references: tuple[str, ...] | None = None
    if isinstance(refs, list):
        references = tuple(str(ref["digest"]) for ref in refs if isinstance(ref, dict))
    tags = item.get("tags")
    size = item.get("imageSize")
    media = item.get("mediaType")
    config = item.get("configMediaType")
    return Manifest(
        digest=str(item["digest"]),
        media_type=media if isinstance(media, str) and media else None,
        last_updated=parse_time(item.get("lastUpdateTime")),
        created=parse_time(item.get("createdTime")),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        references=references,
        config_media_type=config if isinstance(config, str) and config else None,
        delete_enabled=_flag(attributes, "deleteEnabled"),
        write_enabled=_flag(attributes, "writeEnabled"),
    )


def body_from_json(digest: str, manifest: object, media_type: str | None) -> ManifestBody:
    """Children of an index and the subject of a referrer; ManifestUnreadable if malformed."""
    if not isinstance(manifest, dict):
        raise ManifestUnreadable(f"manifest {digest} is not a JSON object")
    declared = manifest.get("mediaType")
    kind = declared if isinstance(declared, str) and declared else media_type
    children: list[str] = []
    entries = manifest.get("manifests")
    if entries is not None:
        if not isinstance(entries, list):
            raise ManifestUnreadable(f"manifest {digest}: 'manifests' is not a list")
        for entry in entries:
            child = entry.get("digest") if isinstance(entry, dict) else None
            if not isinstance(child, str) or not child:
                raise ManifestUnreadable(f"manifest {digest}: an index entry has no digest")
            children.append(child)
    subject = manifest.get("subject")
    subject_digest: str | None = None
    if subject is not None:
        value = subject.get("digest") if isinstance(subject, dict) else None
        if not isinstance(value, str) or not value:
            raise ManifestUnreadable(f"manifest {digest}: 'subject' has no digest")
        subject_digest = value
    return ManifestBody(digest, kind, tuple(children), subject_digest)


# ---------------------------------------------------------------- errors


def _roles(action: str) -> str:
    if action == "delete":
        return (
            "the AcrDelete role (or 'Container Registry Repository Contributor' on "
            "ABAC-enabled registries)"
        )
    if action == "unlock":
        return (
            "permission to write metadata (e.g. Contributor, or 'Container Registry Repository "
            "Writer' on ABAC-enabled registries)"
        )
    if action == "push":
        return (
            "the AcrPush role (or 'Container Registry Repository Writer' on ABAC-enabled "
            "registries) to restore tags"
        )
    if action == "catalog":
        return (
            "the AcrPull role (or 'Container Registry Repository Catalog Lister' on "
            "ABAC-enabled registries)"
        )
    return "the AcrPull role (or 'Container Registry Repository Reader' on ABAC-enabled registries)"


def _error_code(error: HttpResponseError) -> str:
    try:
        body: Any = json.loads(error.response.text()) if error.response is not None else None
        first = body["errors"][0]
        return f" {first.get('code', '')}: {first.get('message', '')}".rstrip(": ")
    except Exception:  # an unread stream, no JSON, no errors list: the status says enough
        return ""


def map_error(exc: Exception, what: str, action: str) -> RegistryError:
    """SDK exception -> the engine's error, naming the role on 401/403. Never echoes headers."""
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        status = exc.status_code
        detail = _error_code(exc)
        if status in (401, 403):
            return PermissionDenied(
                f"{what}: HTTP {status}{detail}; the identity needs {_roles(action)}", status=status
            )
        if status == 404:
            return NotFound(f"{what}: not found (HTTP 404){detail}", status=404)
        return RegistryError(f"{what}: HTTP {status}{detail}", status=status)
    if isinstance(exc, AzureError):
        return RegistryError(f"{what}: {type(exc).__name__}: {exc.message}")
    return RegistryError(f"{what}: {type(exc).__name__}: {exc}")


def raise_for_status(response: AsyncHttpResponse, what: str, action: str) -> None:
    if response.status_code != 200:
        raise map_error(HttpResponseError(response=response), what, action)
