"""The Registry protocol on azure-containerregistry's aio client (DESIGN.md sections 2, 4, 5).

The SDK client does the HTTP work; three pipeline policies make it fit for purging:
- `AcrTokenPolicy` (per call): refuses any host but the configured registry, attaches a cached
  per-scope ACR token (so steady state is one request per operation) and answers a 401 challenge
  itself, once, with a token from `{endpoint}/oauth2/` (the challenge's realm is never followed).
- `ChallengeInterceptor` (per try): hands the challenge to `AcrTokenPolicy` and hides it from the
  SDK's own challenge policy, which would otherwise re-exchange tokens on every call.
- `ThrottlePolicy` (per try): the shared adaptive limit of `purge.registry.throttle`.
Retries (5xx, dropped connections, 429 with a bounded Retry-After) are azure-core's, with jitter.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

from azure.containerregistry.aio import ContainerRegistryClient
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy, AsyncRetryPolicy, SansIOHTTPPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import AsyncHttpResponse, HttpRequest

from purge.config.hosts import UntrustedRegistry, trusted_host
from purge.config.settings import DEFAULT_AUDIENCE, Connection
from purge.isotime import parse_utc
from purge.model import Manifest, ManifestBody, Tag
from purge.registry.protocol import ManifestUnreadable, NotFound, PermissionDenied, RegistryError
from purge.registry.throttle import AdaptiveLimiter
from purge.registry.tokens import TokenBroker, parse_challenge, token_source

#: Page size for listings. ACR caps `n` at 1000; fewer pages means fewer round trips.
PAGE_SIZE = 1000
#: Retries of one call (5xx, 429, dropped connection): enough to ride out a blip, bounded so a
#: run can stop within its budget.
RETRY_TOTAL = 4
RETRY_BACKOFF = 0.5
RETRY_BACKOFF_MAX = 8.0
MAX_RETRY_AFTER = 30.0
#: Wall-clock bound for one operation including its retries.
OPERATION_TIMEOUT = 120
#: Seconds to connect, and to wait for each read. azure-core's default is 300 s for both: a
#: registry that accepts a request and never answers would hold one operation past the HTTP
#: trigger's 230 s limit. A timed-out read is a failed attempt, retried within RETRY_TOTAL.
CONNECTION_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
_CHALLENGE_KEY = "purge_acr_challenge"


class ForeignHostRequest(RegistryError):
    """A request (e.g. a paging link) pointed at a host other than the registry: not sent."""


# ---------------------------------------------------------------- confinement and scopes


def _repository_and_rest(path: str, prefix: str, markers: tuple[str, ...]) -> tuple[str, str]:
    rest = path[len(prefix) :]
    for marker in markers:
        index = rest.find(marker)
        if index > 0:
            return unquote(rest[:index]), rest[index:]
    return unquote(rest.rstrip("/")), ""


def scope_for(method: str, path: str) -> str | None:
    """The ACR token scope a data-plane request needs, as ACR's challenges name it."""
    method = method.upper()
    if path.rstrip("/") in ("/acr/v1/_catalog", "/v2/_catalog"):
        return "registry:catalog:*"
    if path.startswith("/acr/v1/"):
        repo, _ = _repository_and_rest(path, "/acr/v1/", ("/_tags", "/_manifests"))
        action = {"DELETE": "delete", "PATCH": "metadata_write"}.get(method, "metadata_read")
    elif path.startswith("/v2/") and path != "/v2/":
        repo, _ = _repository_and_rest(
            path, "/v2/", ("/manifests/", "/blobs/", "/tags/", "/referrers/")
        )
        action = {"DELETE": "delete", "GET": "pull", "HEAD": "pull"}.get(method, "pull,push")
    else:
        return None
    return f"repository:{repo}:{action}" if repo else None


# ---------------------------------------------------------------- pipeline policies


class AcrTokenPolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Host confinement + cached per-scope tokens + one challenge round (see module doc)."""

    def __init__(self, host: str, broker: TokenBroker, send: Any) -> None:
        super().__init__()
        self._host = host
        self._broker = broker
        self._send = send
        #: predicted scope -> the scope the registry's challenge asked for instead
        self._aliases: dict[str, str] = {}
        self.challenges = 0

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        http = request.http_request
        url = urlsplit(http.url)
        if url.scheme.lower() != "https" or url.netloc.lower() != self._host:
            raise ForeignHostRequest(
                f"refused to send a request to {url.scheme}://{url.hostname}: only "
                f"https://{self._host} is trusted with credentials"
            )
        if url.path.startswith("/oauth2/"):
            return await self.next.send(request)
        predicted = scope_for(http.method, url.path)
        scope = self._aliases.get(predicted, predicted) if predicted else None
        used: str | None = None
        if scope is not None:
            used = await self._broker.token(self._send, scope)
            http.headers["Authorization"] = "Bearer " + used
        response = await self.next.send(request)
        challenge = request.context.get(_CHALLENGE_KEY)
        request.context[_CHALLENGE_KEY] = None
        if response.http_response.status_code != 401 or not challenge:
            return response
        params = parse_challenge(challenge)
        wanted = params.get("scope")
        if not wanted:
            return response
        self.challenges += 1
        if params.get("service"):
            self._broker.service = params["service"]
        if predicted is not None and wanted != predicted:
            self._aliases[predicted] = wanted
        fresh = await self._broker.token(self._send, wanted, reject=used)
        http.headers["Authorization"] = "Bearer " + fresh
        return await self.next.send(request)


class ChallengeInterceptor(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Moves a 401's WWW-Authenticate into the pipeline context (see module doc)."""

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:  # type: ignore[type-arg]
        headers = response.http_response.headers
        if response.http_response.status_code == 401 and "WWW-Authenticate" in headers:
            request.context[_CHALLENGE_KEY] = headers["WWW-Authenticate"]
            del headers["WWW-Authenticate"]


def _retry_after_seconds(value: str | None) -> float | None:
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


def _remaining(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class ThrottlePolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Every attempt takes a slot of the shared AdaptiveLimiter and reports how it went."""

    def __init__(self, limiter: AdaptiveLimiter) -> None:
        super().__init__()
        self._limiter = limiter

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        started = await self._limiter.acquire()
        try:
            response = await self.next.send(request)
        except BaseException:
            await self._limiter.release(started)
            raise
        headers = response.http_response.headers
        await self._limiter.release(
            started,
            throttled=response.http_response.status_code == 429,
            retry_after=_retry_after_seconds(headers.get("Retry-After")),
            remaining=_remaining(headers.get("x-ms-ratelimit-remaining-calls-per-second")),
        )
        return response


class BoundedRetryPolicy(AsyncRetryPolicy):  # type: ignore[type-arg]
    """azure-core's retries with full jitter, a capped Retry-After, and idempotent POST/PATCH.

    Our POSTs are token requests and our PATCHes set lock flags: repeating either is harmless.
    DELETE is retried too: a 404 on the retry means the first attempt already deleted it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._method_whitelist = frozenset({"HEAD", "GET", "PUT", "DELETE", "POST", "PATCH"})

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        base = float(super().get_backoff_time(settings))
        return random.uniform(base / 2, base) if base > 0 else 0.0

    def get_retry_after(self, response: PipelineResponse) -> float | None:  # type: ignore[type-arg]
        value = super().get_retry_after(response)
        return None if value is None else min(float(value), MAX_RETRY_AFTER)


class SharedSslTransport(AioHttpTransport):  # type: ignore[misc]
    """azure-core's aiohttp transport, building the SSL context for a CA file once.

    Stock azure-core builds a new `ssl.SSLContext` from `connection_verify` on every request;
    aiohttp keys pooled connections by context, so no connection was ever reused: one TLS
    handshake per request, and idle connections piling up (about 2 GB of RSS on each side for
    17,000 requests against the emulator). One context per (cert, verify) restores keep-alive.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ssl_contexts: dict[tuple[Any, Any], Any] = {}

    def _build_ssl_config(self, cert: Any, verify: Any) -> Any:
        key = (cert, verify)
        if key not in self._ssl_contexts:
            self._ssl_contexts[key] = super()._build_ssl_config(cert, verify)
        return self._ssl_contexts[key]


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


def _raise_for(response: AsyncHttpResponse, what: str, action: str) -> None:
    if response.status_code != 200:
        raise map_error(HttpResponseError(response=response), what, action)


# ---------------------------------------------------------------- the registry


class AcrRegistry:
    """purge.registry.protocol.Registry over ContainerRegistryClient. Close it (or `async with`)."""

    def __init__(
        self,
        connection: Connection,
        *,
        max_concurrency: int | None = None,
        page_size: int = PAGE_SIZE,
        **client_kwargs: Any,
    ) -> None:
        self._host = trusted_host(connection.login_server, connection.allowed_hosts)
        self.endpoint = f"https://{self._host}"
        self.page_size = page_size
        self.limiter = AdaptiveLimiter(max_concurrency)
        self.broker = TokenBroker(token_source(connection), self._host)
        self._token_policy = AcrTokenPolicy(self._host, self.broker, self._send_raw)
        kwargs: dict[str, Any] = {
            "per_call_policies": [self._token_policy],
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

    async def _send_raw(self, request: HttpRequest) -> AsyncHttpResponse:
        """A raw request through the SDK client's pipeline (same policies, TLS and session)."""
        generated = self._client._client  # the generated client: raw send_request
        response: AsyncHttpResponse = await generated.send_request(request)
        return response

    async def __aenter__(self) -> AcrRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._client.close()
        finally:
            await self.broker.close()

    # -- listings

    async def list_repositories(self) -> AsyncIterator[str]:
        try:
            pager = self._client.list_repository_names(results_per_page=self.page_size)
            async for name in pager:
                yield name
        except Exception as exc:
            raise map_error(exc, "listing repositories", "catalog") from exc

    async def _pages(
        self, path: str, params: dict[str, str], key: str, what: str
    ) -> AsyncIterator[Any]:
        """GET a listing and follow `Link: <...>; rel="next"`, yielding raw JSON items."""
        url: str | None = path
        query: dict[str, str] = params
        while url is not None:
            try:
                request = HttpRequest(
                    "GET", self.endpoint + url, params=query, headers={"Accept": "application/json"}
                )
                response = await self._send_raw(request)
            except Exception as exc:
                raise map_error(exc, what, "read") from exc
            _raise_for(response, what, "read")
            try:
                body = response.json()
                items = body.get(key) or [] if isinstance(body, dict) else None
            except ValueError:
                items = None
            if not isinstance(items, list):
                raise RegistryError(f"{what}: the registry answered a body without a {key} list")
            for item in items:
                if not isinstance(item, dict):
                    raise RegistryError(f"{what}: malformed entry in {key}")
                yield item
            url = self._next_link(response.headers.get("Link"), what)
            query = {}

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
        async for item in self._pages(f"/acr/v1/{_quote(repository)}/_tags", params, "tags", what):
            try:
                yield tag_from_json(item)
            except (KeyError, TypeError) as exc:
                raise RegistryError(f"{what}: a tag entry lacks {exc}") from exc

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
        what = f"reading manifest {repository}@{digest}"
        if not digest.startswith("sha256:"):
            raise ManifestUnreadable(f"{what}: only sha256 digests can be verified")
        try:
            result = await self._client.get_manifest(repository, digest)
        except (HttpResponseError, AzureError) as exc:
            mapped = map_error(exc, what, "read")
            raise ManifestUnreadable(str(mapped), status=mapped.status) from exc
        except (ValueError, KeyError, TypeError) as exc:  # digest mismatch, size, bad JSON
            raise ManifestUnreadable(f"{what}: {exc}") from exc
        return body_from_json(digest, result.manifest, result.media_type)

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
                repository, digest, raw_response_hook=_recorder(statuses)
            )
        except Exception as exc:
            raise map_error(exc, f"deleting manifest {repository}@{digest}", "delete") from exc
        return not statuses or statuses[-1] != 404

    async def unlock_tag(self, repository: str, tag: str) -> None:
        try:
            await self._client.update_tag_properties(
                repository, tag, can_delete=True, can_write=True
            )
        except Exception as exc:
            raise map_error(exc, f"unlocking tag {repository}:{tag}", "unlock") from exc

    async def unlock_manifest(self, repository: str, digest: str) -> None:
        try:
            await self._client.update_manifest_properties(
                repository, digest, can_delete=True, can_write=True
            )
        except Exception as exc:
            raise map_error(exc, f"unlocking manifest {repository}@{digest}", "unlock") from exc


def _recorder(statuses: list[int]) -> Callable[[PipelineResponse], None]:  # type: ignore[type-arg]
    """A raw_response_hook noting each attempt's status: the last one is the answer."""

    def record(response: PipelineResponse) -> None:  # type: ignore[type-arg]
        statuses.append(int(response.http_response.status_code))

    return record


def _quote(repository: str) -> str:
    return quote(repository, safe="")


def open_registry(connection: Connection, *, max_concurrency: int | None = None) -> AcrRegistry:
    """The Registry for `connection`; raises UntrustedRegistry before any request if refused."""
    return AcrRegistry(connection, max_concurrency=max_concurrency)


__all__ = [
    "AcrRegistry",
    "ForeignHostRequest",
    "UntrustedRegistry",
    "open_registry",
    "scope_for",
    "trusted_host",
]
