"""aiohttp handlers for ACR's data plane (/v2, /acr/v1, /oauth2) and the /_emulator controls.

Routing is done here on the percent-decoded path rather than by aiohttp's router, because ACR
clients encode `/` in repository names (`team%2Fapp`) and `:` in digests, and a repository
name may itself contain `/`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from .auth import TokenService, allows
from .faults import RATE_HEADER, Controls
from .state import (
    INDEX_TYPES,
    Manifest,
    Registry,
    RegistryError,
    Tag,
    check_name,
    clamp_page,
    iso,
    locked_error,
    sha256_digest,
)

JSON_CT = "application/json; charset=utf-8"
COMMON_HEADERS = {
    "Access-Control-Expose-Headers": (
        "Docker-Content-Digest, WWW-Authenticate, Link, X-Ms-Correlation-Request-Id"
    ),
    "Docker-Distribution-Api-Version": "registry/2.0",
    "X-Content-Type-Options": "nosniff",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}
AUTH_MESSAGE = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)
EXCHANGE_FAILED = b'{"errors":[{"code":"UNAUTHORIZED","message":"retrieving permissions failed"}]}'
ATTR_KEYS = ("deleteEnabled", "writeEnabled", "readEnabled", "listEnabled")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
#: /acr/v1/{repo}: a repository name never has a `_tags` or `_manifests` path component.
ACR_REPO = r"^/acr/v1/(?P<repo>(?:(?!/_(?:tags|manifests)(?:/|$)).)+)$"
#: The action each /acr/v1 method needs (HEAD answers like GET, without a body).
ACR_ACTIONS = {
    "GET": "metadata_read",
    "HEAD": "metadata_read",
    "PATCH": "metadata_write",
    "DELETE": "delete",
}
Need = tuple[str, str, str] | None  # (type, name, action) a request requires
Route = Callable[["Api", web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def json_response(
    doc: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(doc), status=status, headers={"Content-Type": JSON_CT, **(headers or {})}
    )


def error_response(err: RegistryError, headers: dict[str, str] | None = None) -> web.Response:
    item: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.detail is not None:
        item["detail"] = err.detail
    if err.challenge:
        headers = {**(headers or {}), "WWW-Authenticate": err.challenge}
    if err.headers:
        headers = {**(headers or {}), **err.headers}
    return json_response({"errors": [item]}, err.status, headers)


def _attrs_json(attrs: dict[str, bool]) -> dict[str, bool]:
    return {k: attrs.get(k, True) for k in ATTR_KEYS}


class Api:
    def __init__(
        self, registry: Registry, tokens: TokenService, controls: Controls, enable_controls: bool
    ) -> None:
        self.registry = registry
        self.tokens = tokens
        self.controls = controls
        self.enable_controls = enable_controls
        self.uploads: dict[str, bytearray] = {}
        self.routes: list[tuple[str, re.Pattern[str], Route]] = [
            (m, re.compile(p), h)
            for m, p, h in [
                ("GET", r"^/v2/?$", Api.v2_root),
                ("GET", r"^/v2/_catalog$", Api.v2_catalog),
                ("GET", r"^/v2/(?P<repo>.+)/tags/list$", Api.v2_tags),
                ("GET", r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$", Api.v2_get_manifest),
                ("HEAD", r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$", Api.v2_get_manifest),
                ("PUT", r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$", Api.v2_put_manifest),
                ("DELETE", r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$", Api.v2_delete_manifest),
                ("GET", r"^/v2/(?P<repo>.+)/referrers/(?P<ref>[^/]+)$", Api.v2_referrers),
                ("POST", r"^/v2/(?P<repo>.+)/blobs/uploads/?$", Api.upload_start),
                ("PATCH", r"^/v2/(?P<repo>.+)/blobs/uploads/(?P<uid>[^/]+)$", Api.upload_patch),
                ("PUT", r"^/v2/(?P<repo>.+)/blobs/uploads/(?P<uid>[^/]+)$", Api.upload_put),
                ("GET", r"^/v2/(?P<repo>.+)/blobs/uploads/(?P<uid>[^/]+)$", Api.upload_status),
                ("DELETE", r"^/v2/(?P<repo>.+)/blobs/uploads/(?P<uid>[^/]+)$", Api.upload_cancel),
                ("GET", r"^/v2/(?P<repo>.+)/blobs/(?P<ref>[^/]+)$", Api.blob_get),
                ("HEAD", r"^/v2/(?P<repo>.+)/blobs/(?P<ref>[^/]+)$", Api.blob_get),
                ("DELETE", r"^/v2/(?P<repo>.+)/blobs/(?P<ref>[^/]+)$", Api.blob_delete),
                ("GET", r"^/acr/v1/_catalog$", Api.acr_catalog),
                ("GET", r"^/acr/v1/(?P<repo>.+)/_tags$", Api.acr_tags),
                ("GET", r"^/acr/v1/(?P<repo>.+)/_tags/(?P<ref>[^/]+)$", Api.acr_tag),
                ("PATCH", r"^/acr/v1/(?P<repo>.+)/_tags/(?P<ref>[^/]+)$", Api.acr_tag),
                ("DELETE", r"^/acr/v1/(?P<repo>.+)/_tags/(?P<ref>[^/]+)$", Api.acr_tag),
                ("GET", r"^/acr/v1/(?P<repo>.+)/_manifests$", Api.acr_manifests),
                ("GET", r"^/acr/v1/(?P<repo>.+)/_manifests/(?P<ref>[^/]+)$", Api.acr_manifest),
                ("PATCH", r"^/acr/v1/(?P<repo>.+)/_manifests/(?P<ref>[^/]+)$", Api.acr_manifest),
                # (No DELETE under /acr/v1/{repo}/_manifests: not in ACR's REST API; 405.)
                ("GET", ACR_REPO, Api.acr_repo),
                ("PATCH", ACR_REPO, Api.acr_repo),
                ("DELETE", ACR_REPO, Api.acr_repo),
                ("POST", r"^/oauth2/exchange$", Api.oauth_exchange),
                ("POST", r"^/oauth2/token$", Api.oauth_token),
                ("GET", r"^/oauth2/token$", Api.oauth_token_get),
            ]
        ]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.controls.middleware], client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    # -- dispatch ----------------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = unquote(request.raw_path.split("?", 1)[0])
        if path.startswith("/_emulator/"):
            if not self.enable_controls:
                return error_response(RegistryError(404, "NOT_FOUND", "controls are disabled"))
            return await self.control(request, path)
        method = "GET" if request.method == "HEAD" and path.startswith("/acr/") else request.method
        allowed = False
        for m, pattern, handler in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            allowed = True
            if m != method:
                continue
            try:
                response = await handler(self, request, match.groupdict())
            except RegistryError as err:
                response = error_response(err)
            break
        else:
            if allowed:
                response = error_response(
                    RegistryError(405, "UNSUPPORTED", "The operation is unsupported.")
                )
            else:
                response = error_response(RegistryError(404, "NOT_FOUND", f"no route for {path}"))
        if not path.startswith("/oauth2/"):
            response.headers.update(COMMON_HEADERS)
            response.headers["X-Ms-Correlation-Request-Id"] = str(uuid.uuid4())
        if request.method == "DELETE" and RATE_HEADER not in response.headers:
            response.headers[RATE_HEADER] = self.controls.remaining_header("write") or "1000.000000"
        return response

    # -- auth --------------------------------------------------------------------------------
    def _service(self, request: web.Request) -> str:
        return request.host

    def authorize(self, request: web.Request, need: Need) -> None:
        """Raise a 401 challenge unless the request carries credentials covering `need`."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        presented = False
        if scheme == "basic":
            creds = self.tokens.decode_basic(value.strip())
            grants = self.tokens.basic_grants(*creds) if creds else None
            if grants is not None:
                if need is None or allows(grants, *need):
                    return
                presented = True
        elif scheme == "bearer":
            grants = self.tokens.access_grants(value.strip())
            if grants is not None:
                if need is None or allows(grants, *need):
                    return
                presented = True
        raise self.challenge(request, need, presented)

    def challenge(self, request: web.Request, need: Need, insufficient: bool) -> RegistryError:
        service = self._service(request)
        parts = [f'Bearer realm="https://{service}/oauth2/token"', f'service="{service}"']
        detail = None
        if need is not None:
            typ, name, action = need
            scope_action = "pull,push" if action == "push" else action
            parts.append(f'scope="{typ}:{name}:{scope_action}"')
            detail = [{"Type": typ, "Name": name, "Action": a} for a in scope_action.split(",")]
        if insufficient:
            parts.append('error="insufficient_scope"')
        err = RegistryError(401, "UNAUTHORIZED", AUTH_MESSAGE, detail)
        err.challenge = ",".join(parts)
        return err

    # -- helpers -----------------------------------------------------------------------------
    def _link(self, base: str, last: str, n: int, orderby: str, extra: str = "") -> str:
        return f'<{base}?last={quote(last, safe="")}&n={n}&orderby={orderby}{extra}>; rel="next"'

    def _tag_json(self, t: Tag) -> dict[str, Any]:
        return {
            "name": t.name,
            "digest": t.digest,
            "createdTime": iso(t.created),
            "lastUpdateTime": iso(t.updated),
            "signed": False,
            "changeableAttributes": _attrs_json(t.attrs),
        }

    def _manifest_json(self, m: Manifest, references: bool = False) -> dict[str, Any]:
        """A manifest item; `references` (an index's children) only in the single-item view."""
        item: dict[str, Any] = {
            "digest": m.digest,
            "imageSize": m.image_size,
            "createdTime": iso(m.created),
            "lastUpdateTime": iso(m.updated),
        }
        if m.architecture:
            item["architecture"] = m.architecture
            item["os"] = m.os
        item["mediaType"] = m.media_type
        if m.config_media_type:
            item["configMediaType"] = m.config_media_type
        if m.tags:
            item["tags"] = sorted(m.tags)
        item["changeableAttributes"] = _attrs_json(m.attrs)
        if references and m.media_type in INDEX_TYPES:
            item["references"] = [dict(r) for r in m.references]
        return item

    def _resolve_manifest(self, repo: Any, ref: str) -> Manifest:
        m = repo.resolve(ref)
        if m is None:
            if ref.startswith("sha256:"):
                raise RegistryError(404, "MANIFEST_UNKNOWN", "manifest unknown")
            raise RegistryError(404, "MANIFEST_UNKNOWN", f'manifest tagged by "{ref}" is not found')
        return m

    async def _patch_attrs(self, request: web.Request, attrs: dict[str, bool]) -> None:
        try:
            body = await request.json()
        except ValueError:
            raise RegistryError(400, "BAD_REQUEST", "request body is not JSON") from None
        if not isinstance(body, dict):
            raise RegistryError(400, "BAD_REQUEST", "expected a JSON object of attributes")
        for key, val in body.items():
            if key in ATTR_KEYS:
                if not isinstance(val, bool):
                    raise RegistryError(400, "BAD_REQUEST", f"{key} must be true or false")
                attrs[key] = val

    # -- /v2 ---------------------------------------------------------------------------------
    async def v2_root(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, None)
        return json_response({})

    def _catalog_page(self, request: web.Request) -> tuple[list[str], int, bool]:
        """One page of repository names (both catalog APIs): names, page size, more to come."""
        self.authorize(request, ("registry", "catalog", "*"))
        n = clamp_page(request.query.get("n"))
        last = request.query.get("last") or None
        names = list(_first(self.registry.visible_names(last), n + 1))
        return names[:n], n, len(names) > n

    async def v2_catalog(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        names, n, more = self._catalog_page(request)
        headers = {}
        if more:
            headers["Link"] = f'</v2/_catalog?last={quote(names[-1], safe="")}&n={n}>; rel="next"'
        return json_response({"repositories": names}, headers=headers)

    async def v2_tags(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "pull"))
        repo = self.registry.repo(p["repo"])
        n = clamp_page(request.query.get("n")) if "n" in request.query else 10**9
        names = list(_first(repo.tag_names.after(request.query.get("last") or None, False), n + 1))
        headers = {}
        if len(names) > n:
            names = names[:n]
            headers["Link"] = (
                f'</v2/{repo.name}/tags/list?last={quote(names[-1], safe="")}&n={n}>; rel="next"'
            )
        return json_response({"name": repo.name, "tags": names}, headers=headers)

    async def v2_get_manifest(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "pull"))
        repo = self.registry.repo(p["repo"])
        m = self._resolve_manifest(repo, p["ref"])
        repo.check_readable(p["ref"])
        if m.unreadable:
            raise RegistryError(500, "UNKNOWN", "internal error reading the manifest")
        body = m.served_body()
        headers = {
            "Content-Type": m.media_type,
            "Docker-Content-Digest": m.digest,
            "ETag": f'"{m.digest}"',
        }
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(status=200, headers=headers)
        return web.Response(body=body, status=200, headers=headers)

    async def v2_put_manifest(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "push"))
        body = await request.read()
        ref = p["ref"]
        media_type = request.headers.get("Content-Type") or None
        if ref.startswith("sha256:") and sha256_digest(body) != ref:
            raise RegistryError(
                400, "DIGEST_INVALID", "provided digest did not match uploaded content"
            )
        digest = self.registry.push_manifest(
            p["repo"], body, media_type, None if ref.startswith("sha256:") else ref
        )
        response = _created(digest, f"/v2/{p['repo']}/manifests/{digest}")
        subject = self.registry.repo(p["repo"]).manifests[digest].subject
        if subject:  # the spec's MUST for a registry that serves the referrers API
            response.headers["OCI-Subject"] = subject
        return response

    async def v2_delete_manifest(
        self, request: web.Request, p: dict[str, str]
    ) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "delete"))
        ref = p["ref"]
        if not ref.startswith("sha256:"):
            raise RegistryError(400, "UNSUPPORTED", "deleting a manifest needs a digest, not a tag")
        try:
            self.registry.delete_manifest(p["repo"], ref)
        except RegistryError as err:
            if err.code == "NAME_UNKNOWN":
                raise RegistryError(
                    404, "MANIFEST_UNKNOWN", f"manifest {ref} is not found"
                ) from None
            raise
        return web.Response(status=202, headers={"Content-Length": "0"})

    async def v2_referrers(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "pull"))
        if not DIGEST_RE.match(p["ref"]):
            raise RegistryError(400, "DIGEST_INVALID", "invalid digest")
        repo = self.registry.repositories.get(p["repo"])
        wanted = request.query.get("artifactType")
        items = []
        for d in sorted(repo.referrers.get(p["ref"], ())) if repo else ():
            m = repo.manifests[d]  # type: ignore[union-attr]
            art = m.artifact_type or m.config_media_type
            if wanted and art != wanted:
                continue
            item: dict[str, Any] = {
                "mediaType": m.media_type,
                "digest": d,
                "size": len(m.body),
                "artifactType": art,
            }
            if m.annotations:
                item["annotations"] = dict(m.annotations)
            items.append(item)
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if wanted:
            headers["OCI-Filters-Applied"] = "artifactType"
        doc = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": items,
        }
        return web.Response(body=dumps(doc), headers=headers)

    # -- blobs -------------------------------------------------------------------------------
    async def upload_start(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "push"))
        check_name(p["repo"])
        existing = self.registry.repositories.get(p["repo"])
        if existing is not None:
            existing.check_writable()
        mount = request.query.get("mount")
        if mount and mount in self.registry.blobs:
            return _created(mount, f"/v2/{p['repo']}/blobs/{mount}")
        digest = request.query.get("digest")
        if digest:
            data = await request.read()
            return self._finish_upload(p["repo"], bytes(data), digest)
        uid = str(uuid.uuid4())
        self.uploads[uid] = bytearray()
        return web.Response(
            status=202,
            headers={
                "Location": f"/v2/{p['repo']}/blobs/uploads/{uid}",
                "Docker-Upload-Uuid": uid,
                "Range": "0-0",
                "Content-Length": "0",
            },
        )

    def _upload(self, uid: str) -> bytearray:
        buf = self.uploads.get(uid)
        if buf is None:
            raise RegistryError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        return buf

    def _upload_headers(self, repo: str, uid: str, buf: bytearray) -> dict[str, str]:
        return {
            "Location": f"/v2/{repo}/blobs/uploads/{uid}",
            "Docker-Upload-Uuid": uid,
            "Range": f"0-{max(len(buf) - 1, 0)}",
            "Content-Length": "0",
        }

    async def _append_chunk(self, request: web.Request, p: dict[str, str]) -> bytearray:
        """Append a chunk; one that does not start at the upload's offset answers 416."""
        buf = self._upload(p["uid"])
        data = await request.read()
        raw = request.headers.get("Content-Range", "").strip()
        if raw:
            span = re.fullmatch(r"(?:bytes[ =])?(\d+)-(\d+)(?:/\S+)?", raw)
            if span is None:
                raise RegistryError(400, "BLOB_UPLOAD_INVALID", f"bad Content-Range {raw!r}")
            start, end = int(span.group(1)), int(span.group(2))
            if start != len(buf) or (data and end - start + 1 != len(data)):
                err = RegistryError(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    f"chunk {start}-{end} does not continue the upload at offset {len(buf)}",
                )
                err.headers = self._upload_headers(p["repo"], p["uid"], buf)
                del err.headers["Content-Length"]
                raise err
        buf.extend(data)
        return buf

    async def upload_patch(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "push"))
        buf = await self._append_chunk(request, p)
        return web.Response(status=202, headers=self._upload_headers(p["repo"], p["uid"], buf))

    async def upload_status(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "push"))
        buf = self._upload(p["uid"])
        return web.Response(status=204, headers=self._upload_headers(p["repo"], p["uid"], buf))

    async def upload_cancel(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "push"))
        self._upload(p["uid"])
        del self.uploads[p["uid"]]
        return web.Response(status=204, headers={"Content-Length": "0"})

    async def upload_put(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "push"))
        buf = await self._append_chunk(request, p)
        digest = request.query.get("digest", "")
        del self.uploads[p["uid"]]
        return self._finish_upload(p["repo"], bytes(buf), digest)

    def _finish_upload(self, repo: str, data: bytes, digest: str) -> web.Response:
        if sha256_digest(data) != digest:
            raise RegistryError(
                400, "DIGEST_INVALID", "provided digest did not match uploaded content"
            )
        self.registry.put_blob(data)
        return _created(digest, f"/v2/{repo}/blobs/{digest}")

    async def blob_get(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "pull"))
        repo = self.registry.repositories.get(p["repo"])
        if repo is not None and not repo.attrs.get("readEnabled", True):
            raise locked_error()
        data = self.registry.blobs.get(p["ref"])
        if data is None:
            raise RegistryError(404, "BLOB_UNKNOWN", "blob unknown to registry")
        headers = {"Docker-Content-Digest": p["ref"], "Content-Type": "application/octet-stream"}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return web.Response(status=200, headers=headers)
        # A Range GET answers 206, as ACR's blob storage does (the SDK's download_blob needs it).
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", "").strip())
        if wanted:
            start = int(wanted.group(1))
            if start >= len(data) or (wanted.group(2) and int(wanted.group(2)) < start):
                headers["Content-Range"] = f"bytes */{len(data)}"
                return web.Response(status=416, headers=headers)
            end = min(int(wanted.group(2) or len(data) - 1), len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return web.Response(status=206, body=data[start : end + 1], headers=headers)
        return web.Response(body=data, headers=headers)

    async def blob_delete(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "delete"))
        if self.registry.blobs.pop(p["ref"], None) is None:
            raise RegistryError(404, "BLOB_UNKNOWN", "blob unknown to registry")
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- /acr/v1 -----------------------------------------------------------------------------
    async def acr_catalog(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        names, n, more = self._catalog_page(request)
        headers = {}
        if more:
            orderby = request.query.get("orderby", "")
            headers["Link"] = self._link("/acr/v1/_catalog", names[-1], n, orderby)
        return json_response({"repositories": names}, headers=headers)

    async def acr_repo(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], ACR_ACTIONS[request.method]))
        repo = self.registry.repo(p["repo"])
        if request.method == "DELETE":
            digests, tags = self.registry.delete_repository(p["repo"])
            return json_response({"manifestsDeleted": digests, "tagsDeleted": tags or None}, 202)
        if request.method == "PATCH":
            await self._patch_attrs(request, repo.attrs)
        return json_response(
            {
                "registry": self._service(request),
                "imageName": repo.name,
                "createdTime": iso(repo.created),
                "lastUpdateTime": iso(repo.updated),
                "manifestCount": len(repo.manifests),
                "tagCount": len(repo.tags),
                "changeableAttributes": _attrs_json(repo.attrs),
            }
        )

    async def acr_tags(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "metadata_read"))
        repo = self.registry.repo(p["repo"])
        q = request.query
        n = clamp_page(q.get("n"))
        orderby = q.get("orderby", "")
        digest = q.get("digest") or None
        tags, more = repo.page_tags(n, q.get("last") or None, orderby or None, digest)
        headers = {}
        if more:
            extra = f"&digest={quote(digest, safe='')}" if digest else ""
            headers["Link"] = self._link(
                f"/acr/v1/{quote(repo.name, safe='')}/_tags", tags[-1].name, n, orderby, extra
            )
        doc: dict[str, Any] = {"registry": self._service(request), "imageName": repo.name}
        if tags:  # ACR leaves the key out of an empty page (acr-cli relies on it)
            doc["tags"] = [self._tag_json(t) for t in tags]
        return json_response(doc, headers=headers)

    async def acr_tag(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], ACR_ACTIONS[request.method]))
        repo = self.registry.repo(p["repo"])
        if request.method == "DELETE":
            tag = self.registry.delete_tag(p["repo"], p["ref"])
            return web.Response(
                status=202,
                headers={"Content-Length": "0", "X-Ms-Int-Docker-Content-Digest": tag.digest},
            )
        t = repo.tags.get(p["ref"])
        if t is None:
            raise RegistryError(404, "TAG_UNKNOWN", "the specified tag does not exist")
        if request.method == "PATCH":
            await self._patch_attrs(request, t.attrs)
        return json_response(
            {"registry": self._service(request), "imageName": repo.name, "tag": self._tag_json(t)}
        )

    async def acr_manifests(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], "metadata_read"))
        repo = self.registry.repo(p["repo"])
        q = request.query
        n = clamp_page(q.get("n"))
        orderby = q.get("orderby", "")
        items, more = repo.page_manifests(n, q.get("last") or None, orderby or None)
        headers = {}
        if more:
            headers["Link"] = self._link(
                f"/acr/v1/{quote(repo.name, safe='')}/_manifests", items[-1].digest, n, orderby
            )
        doc: dict[str, Any] = {"registry": self._service(request), "imageName": repo.name}
        if items:  # ACR leaves the key out of an empty page (acr-cli relies on it)
            doc["manifests"] = [self._manifest_json(m) for m in items]
        return json_response(doc, headers=headers)

    async def acr_manifest(self, request: web.Request, p: dict[str, str]) -> web.StreamResponse:
        self.authorize(request, ("repository", p["repo"], ACR_ACTIONS[request.method]))
        repo = self.registry.repo(p["repo"])
        m = repo.resolve(p["ref"])
        if m is None:
            raise RegistryError(404, "MANIFEST_UNKNOWN", "manifest unknown")
        if request.method == "PATCH":
            await self._patch_attrs(request, m.attrs)
        return json_response(
            {
                "registry": self._service(request),
                "imageName": repo.name,
                "manifest": self._manifest_json(m, references=True),
            }
        )

    # -- /oauth2 -----------------------------------------------------------------------------
    async def oauth_exchange(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        service = str(form.get("service", "")) or self._service(request)
        refresh = None
        if grant == "access_token":
            refresh = self.tokens.exchange(str(form.get("access_token", "")), service)
        elif grant == "password" and self.tokens.basic_ok(
            str(form.get("username", "")), str(form.get("password", ""))
        ):
            refresh = self.tokens.refresh_for_admin(service)
        if refresh is None:
            return web.Response(
                body=EXCHANGE_FAILED,
                status=401,
                content_type="application/json",
            )
        return self._oauth_ok({"refresh_token": refresh})

    def _oauth_ok(self, doc: dict[str, Any]) -> web.Response:
        headers = {RATE_HEADER: self.controls.remaining_header("read") or "166.650000"}
        return json_response(doc, headers=headers)

    def _oauth_denied(self) -> web.Response:
        err = RegistryError(401, "UNAUTHORIZED", AUTH_MESSAGE)
        return error_response(err)

    async def oauth_token(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        scope = " ".join(str(v) for v in form.getall("scope", []))  # each field is granted
        service = str(form.get("service", "")) or self._service(request)
        if grant == "refresh_token":
            token = self.tokens.access_from_refresh(
                str(form.get("refresh_token", "")), scope, service
            )
            if token is None:
                return self._oauth_denied()
            return self._oauth_ok({"access_token": token})
        if grant == "password":
            user, pw = str(form.get("username", "")), str(form.get("password", ""))
            if user or pw:
                token = self.tokens.access_for_basic(user, pw, scope, service)
                if token is None:
                    return self._oauth_denied()
                return self._oauth_ok({"access_token": token})
            if self.tokens.anonymous_pull:
                return self._oauth_ok({"access_token": self.tokens.access_anonymous(service)})
            return self._oauth_denied()
        return error_response(
            RegistryError(400, "UNSUPPORTED", f"grant_type {grant!r} is not supported")
        )

    async def oauth_token_get(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        """The Docker token flow (docker, oras): Basic credentials or anonymous."""
        service = request.query.get("service") or self._service(request)
        scope = " ".join(request.query.getall("scope", []))
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            creds = self.tokens.decode_basic(value.strip())
            token = self.tokens.access_for_basic(*creds, scope, service) if creds else None
            if token is None:
                return self._oauth_denied()
        elif self.tokens.anonymous_pull:
            token = self.tokens.access_anonymous(service)
        else:
            return self._oauth_denied()
        return self._oauth_ok({"token": token, "access_token": token})

    # -- /_emulator --------------------------------------------------------------------------
    async def control(self, request: web.Request, path: str) -> web.StreamResponse:
        name = path[len("/_emulator/") :].strip("/")
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return json_response({"error": "control request body must be JSON"}, 400)
        c = self.controls
        try:
            if name == "state" and request.method == "GET":
                return json_response(self.registry.dump())
            if name == "log" and request.method == "GET":
                return json_response({"requests": list(c.log)})
            if name == "log" and request.method == "DELETE":
                c.log.clear()
                return json_response({"cleared": True})
            if name == "tokens" and request.method == "GET":
                return json_response(
                    {"issued": list(self.tokens.issued), "aad": list(self.tokens.aad_tokens_seen)}
                )
            if name == "latency" and request.method == "PUT":
                c.latency = float(body.get("seconds", 0))
                return json_response({"latency": c.latency})
            if name == "rate-limit" and request.method == "PUT":
                if "sku" in body:
                    c.set_sku(str(body["sku"]))
                elif "reads" in body or "writes" in body:
                    c.set_rate_limits(_rate(body.get("reads")), _rate(body.get("writes")))
                else:
                    c.set_rate_limit(_rate(body.get("rps")))
                return json_response(c.limits())
            if name == "rate-limit" and request.method == "GET":
                return json_response(c.limits())
            if name == "token-lifetime" and request.method == "PUT":
                self.tokens.lifetime = float(body["seconds"])
                return json_response({"seconds": self.tokens.lifetime})
            if name == "faults" and request.method == "POST":
                c.inject(**body)
                return json_response({"faults": len(c.faults)})
            if name == "faults" and request.method == "DELETE":
                c.faults.clear()
                return json_response({"faults": 0})
        except (TypeError, ValueError, KeyError) as exc:
            return json_response({"error": f"bad control request for {name}: {exc}"}, 400)
        return json_response(
            {
                "error": f"unknown control {request.method} /_emulator/{name}",
                "controls": [
                    "GET state",
                    "GET|DELETE log",
                    "GET tokens",
                    "PUT latency",
                    "GET|PUT rate-limit",
                    "PUT token-lifetime",
                    "POST|DELETE faults",
                ],
            },
            404,
        )


def _rate(value: Any) -> float | None:
    """A control's requests-per-second value: None/0 for no limit, else a positive number."""
    if value is None or value == 0:
        return None
    rate = float(value)
    if rate <= 0:
        raise ValueError(f"a rate limit must be > 0 requests per second, got {value}")
    return rate


def _first(it: Any, n: int) -> Any:
    for i, x in enumerate(it):
        if i >= n:
            return
        yield x


def _created(digest: str, location: str) -> web.Response:
    """201 as ACR answers a manifest push or a finished blob upload (the recordings' headers)."""
    return web.Response(
        status=201,
        headers={"Docker-Content-Digest": digest, "Location": location, "Content-Length": "0"},
    )
