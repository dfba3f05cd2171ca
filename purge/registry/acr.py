"""The Registry protocol on azure-containerregistry's aio client (DESIGN.md sections 2, 4, 5).

The SDK client does the HTTP work; the pipeline policies of purge.registry.policies make it fit
for purging (host confinement, cached per-scope tokens so that steady state is one request per
operation, the shared adaptive limit, bounded retries); purge.registry.wire maps its JSON and
errors to the engine's types; purge.registry.transport shares one SSL context per CA file and
reads every answer we read ourselves (`_send_raw`) streamed, within a cap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

from azure.containerregistry.aio import ContainerRegistryClient
from azure.core.pipeline import PipelineResponse
from azure.core.rest import AsyncHttpResponse, HttpRequest

from purge import budget
from purge.config.hosts import trusted_host
from purge.config.settings import DEFAULT_AUDIENCE, Connection
from purge.model import KNOWN_MEDIA_TYPES, Manifest, ManifestBody, Tag
from purge.registry.policies import (
    RETRY_BACKOFF,
    RETRY_BACKOFF_MAX,
    RETRY_TOTAL,
    AcrTokenPolicy,
    BoundedRetryPolicy,
    ChallengeInterceptor,
    DeadlinePolicy,
    ForeignHostRequest,
    ThrottlePolicy,
    grace_for,
    within_budget,
)
from purge.registry.protocol import (
    ManifestUnreadable,
    NotFound,
    RegistryError,
    RemovedTag,
    RepositoryAttributes,
)
from purge.registry.throttle import AdaptiveLimiter
from purge.registry.tokens import TokenBroker, TokenSource, token_source
from purge.registry.transport import (
    ANSWER_CAP,
    CONNECTION_TIMEOUT,
    PAGE_CAP,
    READ_TIMEOUT,
    Answer,
    BodyCap,
    SharedSslTransport,
    read_capped,
)
from purge.registry.wire import (
    body_from_json,
    error_for_status,
    manifest_from_json,
    map_error,
    raise_for_status,
    repository_attributes_from_json,
    tag_from_json,
)

#: Page size for listings. ACR caps `n` at 1000; fewer pages means fewer round trips.
PAGE_SIZE = 1000
#: ACR's answer to a tag delete names the digest the tag pointed to (recorded from real ACR).
TAG_DIGEST_HEADER = "X-Ms-Int-Docker-Content-Digest"
#: Every manifest type a tag can be put back on: the body is PUT back byte for byte.
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.artifact.manifest.v1+json",
    )
)
#: Wall-clock bound for one operation including its retries (DeadlinePolicy enforces it).
OPERATION_TIMEOUT = 120
#: Empty pages in a row that still link to a next page before a listing is given up.
MAX_EMPTY_PAGES = 10


# ---------------------------------------------------------------- restore (purge.history)


class RestoreMethods:
    """Reading a manifest's exact bytes and putting them under a tag: what an undo needs."""

    endpoint: str

    async def _send_raw(
        self, request: HttpRequest, what: str | None = None, *, cap: BodyCap = ANSWER_CAP
    ) -> Answer:
        raise NotImplementedError  # AcrRegistry's

    async def _call(self, request: HttpRequest, what: str, action: str) -> Answer:
        try:
            return await self._send_raw(request, what)
        except budget.BudgetSpent:
            raise  # not an error of the item: the caller stops starting work
        except Exception as exc:
            raise map_error(exc, what, action) from exc

    async def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest `tag` points at now; None when there is no such tag (or repository)."""
        what = f"reading tag {repository}:{tag}"
        path = f"/acr/v1/{_quote(repository)}/_tags/{quote(tag, safe='')}"
        request = HttpRequest(
            "GET", self.endpoint + path, params={"api-version": "2021-07-01"},
            headers={"Accept": "application/json"},
        )  # fmt: skip
        response = await self._call(request, what, "read")
        if response.status_code == 404:
            return None
        raise_for_status(response, what, "read")
        try:
            digest = response.json()["tag"]["digest"]
        except (ValueError, RecursionError, KeyError, TypeError) as exc:
            raise RegistryError(f"{what}: the registry answered without tag.digest") from exc
        if not isinstance(digest, str):
            raise RegistryError(f"{what}: the registry answered a digest that is not a string")
        return digest

    async def read_manifest(self, repository: str, digest: str) -> tuple[bytes, str]:
        """The manifest's bytes, checked against `digest`, and its media type; NotFound (404)."""
        what = f"reading manifest {repository}@{digest}"
        if not digest.startswith("sha256:"):
            raise ManifestUnreadable(f"{what}: only sha256 digests can be verified")
        request = HttpRequest(
            "GET", f"{self.endpoint}/v2/{_quote(repository)}/manifests/{digest}",
            headers={"Accept": ", ".join(sorted(KNOWN_MEDIA_TYPES))},
        )  # fmt: skip
        response = await self._call(request, what, "read")
        raise_for_status(response, what, "read")
        body = response.content
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise ManifestUnreadable(f"{what}: the body does not match its digest")
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        if not media_type:
            raise ManifestUnreadable(f"{what}: the registry sent no Content-Type")
        return body, media_type

    async def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        """PUT the bytes under `tag` (needs push rights); answers the digest the registry kept."""
        what = f"putting tag {repository}:{tag}"
        request = HttpRequest(
            "PUT", f"{self.endpoint}/v2/{_quote(repository)}/manifests/{quote(tag, safe='')}",
            content=body, headers={"Content-Type": media_type},
        )  # fmt: skip
        response = await self._call(request, what, "push")
        if response.status_code != 201:
            raise error_for_status(response.status_code, response.content, what, "push")
        stored = response.headers.get("Docker-Content-Digest")
        return stored if stored else "sha256:" + hashlib.sha256(body).hexdigest()


# ---------------------------------------------------------------- the registry


class AcrRegistry(RestoreMethods):
    """purge.registry.protocol.Registry over ContainerRegistryClient. Close it (or `async with`)."""

    def __init__(
        self,
        connection: Connection,
        *,
        max_concurrency: int | None = None,
        page_size: int = PAGE_SIZE,
        source: TokenSource | None = None,
        **client_kwargs: Any,
    ) -> None:
        """`source` replaces the identity `connection` names (tests: an anonymous pull)."""
        self._host = trusted_host(connection.login_server, connection.allowed_hosts)
        self.endpoint = f"https://{self._host}"
        self.page_size = page_size
        #: `n` of catalog pages (acr purge's `--repository-page-size`); None: `page_size`.
        self.catalog_page_size = connection.catalog_page_size
        self.limiter = AdaptiveLimiter(max_concurrency)
        self.broker = TokenBroker(source or token_source(connection), self._host)
        self._token_policy = AcrTokenPolicy(self._host, self.broker, self._send_raw)
        kwargs: dict[str, Any] = {
            "per_call_policies": [DeadlinePolicy(OPERATION_TIMEOUT), self._token_policy],
            "per_retry_policies": [ChallengeInterceptor(), ThrottlePolicy(self.limiter)],
            "retry_policy": BoundedRetryPolicy(
                retry_total=RETRY_TOTAL,
                retry_backoff_factor=RETRY_BACKOFF,
                retry_backoff_max=RETRY_BACKOFF_MAX,
                timeout=OPERATION_TIMEOUT,
            ),
            "permit_redirects": False,
        }
        transport: dict[str, Any] = {
            "connection_timeout": CONNECTION_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
        }
        if connection.ca_file:
            kwargs["connection_verify"] = transport["connection_verify"] = connection.ca_file
        kwargs["transport"] = SharedSslTransport(**transport)
        kwargs.update(client_kwargs)
        # No credential for the SDK: the broker alone holds it, so the SDK's own challenge
        # policy can never send an Azure AD token anywhere.
        self._client = ContainerRegistryClient(
            self.endpoint, None, audience=connection.audience or DEFAULT_AUDIENCE,
            **kwargs,
        )  # fmt: skip

    @property
    def login_server(self) -> str:
        return self._host

    @property
    def token_fetches(self) -> int:
        return self.broker.fetches

    async def _send_raw(
        self, request: HttpRequest, what: str | None = None, *, cap: BodyCap = ANSWER_CAP
    ) -> Answer:
        """A raw request through the SDK client's pipeline (same policies, TLS and session).

        Every answer we read ourselves comes through here: streamed and read to at most `cap`
        (BodyTooLarge past it: a hostile registry cannot make a run hold a huge body), and
        bounded in total time like the request itself (the pipeline's deadline ends with the
        headers; the body is read after).
        """
        path = urlsplit(request.url).path
        what = what or f"{request.method} {path}"
        generated = self._client._client  # the generated client: raw send_request

        async def exchange() -> Answer:
            response: AsyncHttpResponse = await generated.send_request(request, stream=True)
            try:
                body = await read_capped(response, cap, what)
            finally:
                await response.close()
            return Answer(response.status_code, response.headers, body)

        return await within_budget(
            exchange(), what, limit=OPERATION_TIMEOUT, grace=grace_for(request.method, path)
        )

    async def __aenter__(self) -> AcrRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def slot(self) -> AbstractAsyncContextManager[None]:
        return self.limiter.hold()

    async def close(self) -> None:
        try:
            await self._client.close()
        finally:
            await self.broker.close()

    # -- listings

    async def list_repositories(self) -> AsyncIterator[str]:
        params = {"n": str(self.catalog_page_size or self.page_size)}
        what = "listing repositories"
        async for name in self._pages("/acr/v1/_catalog", params, "repositories", what, str):
            yield name

    async def _pages(
        self, path: str, params: dict[str, str], key: str, what: str, kind: type = dict
    ) -> AsyncIterator[Any]:
        """GET a listing and follow `Link: <...>; rel="next"`, yielding raw JSON items.

        A registry that answers without end is not followed without end: the budget is checked
        before each page (BudgetSpent), each page is bounded in time and size, and a page link
        seen before, or too many empty pages that still link on, fail the listing.
        """
        url: str | None = path
        query: dict[str, str] = params
        seen: set[str] = set()
        empty = 0
        while url is not None:
            if budget.spent():
                raise budget.BudgetSpent(f"{what}: the time budget ran out")
            page = await self._get_page(url, query, what)
            if page.status_code != 200:
                action = "catalog" if kind is str else "read"
                raise error_for_status(page.status_code, page.content, what, action)
            items = _page_items(page.content, key, what)
            for item in items:
                if not isinstance(item, kind):
                    raise RegistryError(f"{what}: malformed entry in {key}")
                yield item
            url, query = self._next_link(page.headers.get("Link"), what), {}
            empty = 0 if items else empty + 1
            if url is not None:
                marker = _page_marker(url)
                if marker in seen:
                    raise RegistryError(
                        f"{what}: the registry repeated a page link ({url}); the listing would "
                        "never end"
                    )
                if empty >= MAX_EMPTY_PAGES:
                    raise RegistryError(
                        f"{what}: {empty} empty pages in a row that still link to a next page"
                    )
                seen.add(marker)

    async def _get_page(self, url: str, query: dict[str, str], what: str) -> Answer:
        """One listing page, read to at most PAGE_CAP (a hostile 300 MB page is not held)."""
        request = HttpRequest(
            "GET", self.endpoint + url, params=query, headers={"Accept": "application/json"}
        )
        try:
            return await self._send_raw(request, what, cap=PAGE_CAP)
        except (RegistryError, budget.BudgetSpent):
            raise
        except Exception as exc:
            raise map_error(exc, what, "read") from exc

    def _next_link(self, link: str | None, what: str) -> str | None:
        if not link or "<" not in link or ">" not in link:
            return None
        target = urljoin(self.endpoint + "/", link[link.index("<") + 1 : link.index(">")])
        parts = urlsplit(target)
        if parts.scheme != "https" or parts.netloc.lower() != self._host:
            raise ForeignHostRequest(f"{what}: the next-page link points away from the registry")
        return target[len(self.endpoint) :]

    async def list_tags(self, repository: str) -> AsyncIterator[Tag]:
        what = f"listing tags of {repository}"
        params = {"n": str(self.page_size), "orderby": "timedesc", "api-version": "2021-07-01"}
        position = 0  # the registry's order: --keep's tie-break, as in acr purge
        async for item in self._pages(f"/acr/v1/{_quote(repository)}/_tags", params, "tags", what):
            try:
                yield tag_from_json(item, listed=position)
            except (KeyError, TypeError) as exc:
                raise RegistryError(f"{what}: a tag entry lacks {exc}") from exc
            position += 1

    async def list_manifests(self, repository: str) -> AsyncIterator[Manifest]:
        what = f"listing manifests of {repository}"
        params = {"n": str(self.page_size), "api-version": "2021-07-01"}
        path = f"/acr/v1/{_quote(repository)}/_manifests"
        async for item in self._pages(path, params, "manifests", what):
            try:
                yield manifest_from_json(item)
            except (KeyError, TypeError) as exc:
                raise RegistryError(f"{what}: a manifest entry lacks {exc}") from exc

    # -- reads

    async def get_manifest(self, repository: str, digest: str) -> ManifestBody:
        """The body read like every other answer (capped, verified), not by the SDK's
        get_manifest: that one checks the Content-Length of a compressed answer and then
        inflates it whole (4 MB of gzip can be gigabytes)."""
        what = f"reading manifest {repository}@{digest}"
        try:
            body, media_type = await self.read_manifest(repository, digest)
            manifest = json.loads(body)
        except ManifestUnreadable:
            raise
        except RegistryError as exc:
            raise ManifestUnreadable(str(exc), status=exc.status) from exc
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, absurd depth
            raise ManifestUnreadable(f"{what}: not valid JSON ({type(exc).__name__})") from exc
        return body_from_json(digest, manifest, media_type)

    async def list_referrers(self, repository: str, digest: str) -> tuple[str, ...]:
        what = f"listing referrers of {repository}@{digest}"
        path = f"/v2/{_quote(repository)}/referrers/{digest}"
        found = []
        async for item in self._pages(path, {}, "manifests", what):
            value = item.get("digest")
            if not isinstance(value, str) or not value:
                raise RegistryError(f"{what}: a referrer entry has no digest")
            found.append(value)
        return tuple(found)

    # -- writes

    async def delete_tag(self, repository: str, tag: str) -> bool:
        try:
            statuses: list[int] = []
            await self._client.delete_tag(repository, tag, raw_response_hook=_recorder(statuses))
        except Exception as exc:
            raise map_error(exc, f"deleting tag {repository}:{tag}", "delete") from exc
        return not statuses or statuses[-1] != 404

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        if not digest.startswith("sha"):
            raise RegistryError(f"deleting manifest {repository}@{digest}: not a digest")
        try:
            statuses: list[int] = []
            await self._client.delete_manifest(
                repository,
                digest,
                raw_response_hook=_recorder(statuses),
                retry_total=0,  # sent once: the executor checks again before sending it again
            )
        except Exception as exc:
            raise map_error(exc, f"deleting manifest {repository}@{digest}", "delete") from exc
        return not statuses or statuses[-1] != 404

    async def _get_json(self, path: str, what: str, key: str | None) -> dict[str, Any] | None:
        """GET an /acr/v1 resource: its JSON object (under `key`), None on 404.

        One resource's answer is read to at most ANSWER_CAP: larger is an error for the item
        (which is then kept), never a body held whole.
        """
        try:
            request = HttpRequest(
                "GET",
                self.endpoint + path,
                params={"api-version": "2021-07-01"},
                headers={"Accept": "application/json"},
            )
            response = await self._send_raw(request, what)
        except Exception as exc:
            raise map_error(exc, what, "read") from exc
        if response.status_code == 404:
            return None
        raise_for_status(response, what, "read")
        try:
            body = response.json()
            item = body.get(key) if key is not None else body
        except (ValueError, RecursionError, AttributeError):
            item = None
        if not isinstance(item, dict):
            raise RegistryError(f"{what}: the registry answered an unreadable body")
        return item

    async def remove_tag(self, repository: str, tag: str) -> RemovedTag | None:
        """DELETE the tag; ACR names the digest it removed in X-Ms-Int-Docker-Content-Digest."""
        answers: list[tuple[int, str | None]] = []

        def record(response: PipelineResponse) -> None:  # type: ignore[type-arg]
            http = response.http_response
            answers.append((int(http.status_code), http.headers.get(TAG_DIGEST_HEADER)))

        try:
            await self._client.delete_tag(repository, tag, raw_response_hook=record)
        except Exception as exc:
            raise map_error(exc, f"deleting tag {repository}:{tag}", "delete") from exc
        if answers and answers[-1][0] == 404:
            return None
        return RemovedTag(answers[-1][1] if answers else None)

    async def tag_state(self, repository: str, tag: str) -> Tag | None:
        what = f"reading tag {repository}:{tag}"
        path = f"/acr/v1/{_quote(repository)}/_tags/{quote(tag, safe='')}"
        item = await self._get_json(path, what, "tag")
        try:
            return None if item is None else tag_from_json(item)
        except (KeyError, TypeError) as exc:
            raise RegistryError(f"{what}: the answer lacks {exc}") from exc

    async def manifest_state(self, repository: str, digest: str) -> Manifest | None:
        what = f"reading manifest {repository}@{digest}"
        path = f"/acr/v1/{_quote(repository)}/_manifests/{quote(digest, safe='')}"
        item = await self._get_json(path, what, "manifest")
        try:
            return None if item is None else manifest_from_json(item)
        except (KeyError, TypeError) as exc:
            raise RegistryError(f"{what}: the answer lacks {exc}") from exc

    async def put_tag(self, repository: str, tag: str, digest: str) -> None:
        """Read the manifest's exact bytes by digest, check them, and PUT them by tag."""
        what = f"putting tag {repository}:{tag} back on {digest}"
        path = f"/v2/{_quote(repository)}/manifests/"
        try:
            read = await self._send_raw(
                HttpRequest(
                    "GET", self.endpoint + path + digest, headers={"Accept": MANIFEST_ACCEPT}
                ),
                what,
            )
            raise_for_status(read, what, "read")
            body = read.content
            if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                raise RegistryError(f"{what}: the manifest read does not match its digest")
            media_type = read.headers.get("Content-Type", "")
            written = await self._send_raw(
                HttpRequest(
                    "PUT",
                    self.endpoint + path + quote(tag, safe=""),
                    headers={"Content-Type": media_type},
                    content=body,
                ),
                what,
            )
        except RegistryError:
            raise
        except Exception as exc:
            raise map_error(exc, what, "push") from exc
        if written.status_code not in (200, 201):
            raise error_for_status(written.status_code, written.content, what, "push")

    async def repository_attributes(self, repository: str) -> RepositoryAttributes:
        what = f"reading repository {repository}"
        item = await self._get_json(f"/acr/v1/{_quote(repository)}", what, None)
        if item is None:
            raise NotFound(f"{what}: not found (HTTP 404)", status=404)
        return repository_attributes_from_json(item)

    async def lock_repository(
        self, repository: str, *, delete_enabled: bool, write_enabled: bool
    ) -> None:
        try:
            await self._client.update_repository_properties(  # type: ignore[attr-defined]
                repository, can_delete=delete_enabled, can_write=write_enabled
            )  # (1.2.0's overloads type this coroutine as a plain return)
        except Exception as exc:
            raise map_error(exc, f"changing the locks of {repository}", "unlock") from exc

    async def lock_tag(
        self, repository: str, tag: str, *, delete_enabled: bool, write_enabled: bool
    ) -> None:
        """Put a tag's locks back as they were listed (after an unlock whose delete failed)."""
        await self._set_tag_locks(repository, tag, delete_enabled, write_enabled, "locking")

    async def lock_manifest(
        self, repository: str, digest: str, *, delete_enabled: bool, write_enabled: bool
    ) -> None:
        await self._set_manifest_locks(repository, digest, delete_enabled, write_enabled, "locking")

    async def unlock_tag(self, repository: str, tag: str) -> None:
        await self._set_tag_locks(repository, tag, True, True, "unlocking")

    async def unlock_manifest(self, repository: str, digest: str) -> None:
        await self._set_manifest_locks(repository, digest, True, True, "unlocking")

    async def _set_tag_locks(
        self, repository: str, tag: str, delete: bool, write: bool, verb: str
    ) -> None:
        try:
            await self._client.update_tag_properties(
                repository, tag, can_delete=delete, can_write=write
            )
        except Exception as exc:
            raise map_error(exc, f"{verb} tag {repository}:{tag}", "unlock") from exc

    async def _set_manifest_locks(
        self, repository: str, digest: str, delete: bool, write: bool, verb: str
    ) -> None:
        try:
            await self._client.update_manifest_properties(
                repository, digest, can_delete=delete, can_write=write
            )
        except Exception as exc:
            raise map_error(exc, f"{verb} manifest {repository}@{digest}", "unlock") from exc


def _recorder(statuses: list[int]) -> Callable[[PipelineResponse], None]:  # type: ignore[type-arg]
    """A raw_response_hook noting each attempt's status: the last one is the answer."""

    def record(response: PipelineResponse) -> None:  # type: ignore[type-arg]
        statuses.append(int(response.http_response.status_code))

    return record


def _page_items(data: bytes, key: str, what: str) -> list[Any]:
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, absurd numbers or depth
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else type(exc).__name__
        raise RegistryError(f"{what}: the page is not valid JSON ({reason})") from None
    items = body.get(key) or [] if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise RegistryError(f"{what}: the registry answered a body without a {key} list")
    return items


def _page_marker(url: str) -> str:
    """What identifies a page: its `last` (where the registry resumes), else the whole link."""
    last = parse_qs(urlsplit(url).query).get("last")
    return f"last={last[0]}" if last else url


def _quote(repository: str) -> str:
    return quote(repository, safe="")


def open_registry(connection: Connection, *, max_concurrency: int | None = None) -> AcrRegistry:
    """The Registry for `connection`; raises UntrustedRegistry before any request if refused."""
    return AcrRegistry(connection, max_concurrency=max_concurrency)
