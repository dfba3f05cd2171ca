"""ACR's JSON -> the engine's model, and SDK errors -> the engine's errors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from purge.isotime import parse_ticks, parse_utc
from purge.model import Manifest, ManifestBody, Tag
from purge.registry.protocol import (
    ManifestUnreadable,
    NoAnswer,
    NotFound,
    PermissionDenied,
    RegistryError,
    RepositoryAttributes,
)
from purge.registry.transport import Answer

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


def tag_from_json(item: dict[str, Any], listed: int | None = None) -> Tag:
    """One `_tags` item; `listed` is its position in the registry's timedesc listing."""
    attributes = item.get("changeableAttributes")
    return Tag(
        name=str(item["name"]),
        digest=str(item["digest"]),
        last_updated=parse_time(item.get("lastUpdateTime")),
        updated_ticks=parse_ticks(item.get("lastUpdateTime")),
        listed=listed,
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
        updated_ticks=parse_ticks(item.get("lastUpdateTime")),
        created=parse_time(item.get("createdTime")),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        references=references,
        config_media_type=config if isinstance(config, str) and config else None,
        delete_enabled=_flag(attributes, "deleteEnabled"),
        write_enabled=_flag(attributes, "writeEnabled"),
    )


def repository_attributes_from_json(item: dict[str, Any]) -> RepositoryAttributes:
    """`changeableAttributes` of `GET /acr/v1/{repo}`; absent or malformed counts as locked."""
    attributes = item.get("changeableAttributes")
    return RepositoryAttributes(
        delete_enabled=_flag(attributes, "deleteEnabled"),
        write_enabled=_flag(attributes, "writeEnabled"),
        list_enabled=_flag(attributes, "listEnabled"),
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
            "registries)"
        )
    if action == "catalog":
        return (
            "the AcrPull role (or 'Container Registry Repository Catalog Lister' on "
            "ABAC-enabled registries)"
        )
    return "the AcrPull role (or 'Container Registry Repository Reader' on ABAC-enabled registries)"


def _error_code(error: HttpResponseError) -> str:
    try:
        return _error_detail(error.response.text() if error.response is not None else "")
    except Exception:  # an unread stream: the status says enough
        return ""


def _error_detail(text: str | bytes) -> str:
    """` CODE: message` from ACR's `{"errors": [...]}` body, or "" when there is none."""
    try:
        body: Any = json.loads(text)
        first = body["errors"][0]
        return f" {first.get('code', '')}: {first.get('message', '')}".rstrip(": ")
    except Exception:  # no JSON, no errors list: the status says enough
        return ""


def error_for_status(status: int, body: bytes, what: str, action: str) -> RegistryError:
    """The engine's error for a non-200 answer whose (bounded) body the caller already read."""
    return _http_error(status, _error_detail(body[:65536]), what, action)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` (seconds or an HTTP date) as seconds from now; None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def map_error(exc: Exception, what: str, action: str) -> RegistryError:
    """SDK exception -> the engine's error, naming the role on 401/403. Never echoes headers."""
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        error = _http_error(exc.status_code, _error_code(exc), what, action)
        headers = getattr(exc.response, "headers", None) or {}
        error.retry_after = retry_after_seconds(headers.get("Retry-After"))
        return error
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return NoAnswer(f"{what}: {type(exc).__name__}: {exc.message}")
    if isinstance(exc, AzureError):
        return RegistryError(f"{what}: {type(exc).__name__}: {exc.message}")
    return RegistryError(f"{what}: {type(exc).__name__}: {exc}")


def _http_error(status: int, detail: str, what: str, action: str) -> RegistryError:
    if status in (401, 403):
        return PermissionDenied(
            f"{what}: HTTP {status}{detail}; the identity needs {_roles(action)}", status=status
        )
    if status == 404:
        return NotFound(f"{what}: not found (HTTP 404){detail}", status=404)
    return RegistryError(f"{what}: HTTP {status}{detail}", status=status)


def raise_for_status(answer: Answer, what: str, action: str) -> None:
    if answer.status_code != 200:
        raise error_for_status(answer.status_code, answer.content, what, action)
