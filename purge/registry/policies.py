"""Pipeline policies that make the SDK client fit for purging (see purge.registry.acr).

- `AcrTokenPolicy` (per call): refuses any host but the configured registry, attaches one wide
  ACR token for the run (else cached per-scope ones) and answers a 401 challenge itself, once
  (the realm is never followed).
- `ChallengeInterceptor` (per try): hands the challenge to `AcrTokenPolicy` and hides it from the
  SDK's own challenge policy, which would otherwise re-exchange tokens on every call.
- `ThrottlePolicy` (per try): the shared adaptive limit of `purge.registry.throttle`.
- `BoundedRetryPolicy`: azure-core's retries with a bounded Retry-After.
- `DeadlinePolicy` (per call, outermost): a total deadline per operation, within the run's budget.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy, AsyncRetryPolicy, SansIOHTTPPolicy

from purge import budget
from purge.registry.protocol import NoAnswer, RegistryError
from purge.registry.throttle import AdaptiveLimiter
from purge.registry.tokens import TokenBroker, grants_every_repository, parse_challenge
from purge.registry.wire import retry_after_seconds

#: Retries of one call (5xx, 429, dropped connection): enough to ride out a blip, bounded so a
#: run can stop within its budget.
RETRY_TOTAL = 4
RETRY_BACKOFF = 0.5
RETRY_BACKOFF_MAX = 8.0
MAX_RETRY_AFTER = 30.0
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


def _is_token_path(path: str) -> bool:
    """Is this the registry's token endpoint (`/oauth2/exchange`, `/oauth2/token`)?"""
    return path.startswith("/oauth2/")


#: The one scope acr purge asks for per run: the catalog and every repository, every action.
WIDE_SCOPE = "registry:catalog:* repository:*:*"


class AcrTokenPolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Host confinement + one wide token (else cached per-scope ones) + one challenge round.

    The first request asks for WIDE_SCOPE, as acr purge does: one token for the whole run.
    An ABAC-enabled registry grants no wildcard repositories (the token's `access` claim says
    so, or a request answers 401): from then on each request's own scope is asked for and
    cached, one token per scope.
    """

    def __init__(self, host: str, broker: TokenBroker, send: Any) -> None:
        super().__init__()
        self._host = host
        self._broker = broker
        self._send = send
        #: predicted scope -> the scope the registry's challenge asked for instead
        self._aliases: dict[str, str] = {}
        #: None: not asked yet; True: the wide token is in use; False: refused (ABAC)
        self.wide: bool | None = None
        self._renewed_wide = False
        self.challenges = 0

    async def _token(self, predicted: str) -> tuple[str, str]:
        """(scope, token) for a request that needs `predicted`."""
        if self.wide is not False:
            token = await self._broker.token(self._send, WIDE_SCOPE)
            if self.wide is None:
                self.wide = grants_every_repository(token) is not False
            if self.wide:
                return WIDE_SCOPE, token
        scope = self._aliases.get(predicted, predicted)
        return scope, await self._broker.token(self._send, scope)

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        http = request.http_request
        url = urlsplit(http.url)
        if url.scheme.lower() != "https" or url.netloc.lower() != self._host:
            raise ForeignHostRequest(
                f"refused to send a request to {url.scheme}://{url.hostname}: only "
                f"https://{self._host} is trusted with credentials"
            )
        if _is_token_path(url.path):
            return await self.next.send(request)
        predicted = scope_for(http.method, url.path)
        scope: str | None = None
        used: str | None = None
        if predicted is not None:
            scope, used = await self._token(predicted)
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
        if scope == WIDE_SCOPE and used is not None:
            if grants_every_repository(used) and not self._renewed_wide:
                self._renewed_wide = True  # revoked early (the broker renews before `exp`)
                fresh = await self._broker.token(self._send, WIDE_SCOPE, reject=used)
                http.headers["Authorization"] = "Bearer " + fresh
                return await self.next.send(request)
            self.wide = False  # wildcards refused: per-request scopes from now on
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


def _remaining(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class ThrottlePolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Every attempt takes a slot of the shared AdaptiveLimiter (unless its task holds one) and
    reports how it went.

    Token requests (`/oauth2/...`) take no slot: a task renewing a token holds the broker's lock,
    and the tasks waiting on that lock may hold every slot (the executor holds one around each
    deletion), so a token request that queued for a slot would wait for its own waiters until
    the operation deadline failed them all. They are one per scope and token lifetime, and are
    still recorded, so a 429 on them slows everyone down.
    """

    def __init__(self, limiter: AdaptiveLimiter) -> None:
        super().__init__()
        self._limiter = limiter

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        token_request = _is_token_path(urlsplit(request.http_request.url).path)
        own_slot = not self._limiter.holding and not token_request
        started = await self._limiter.acquire() if own_slot else self._limiter.now()
        try:
            response = await self.next.send(request)
        except BaseException:
            await self._limiter.record(started, release=own_slot)
            raise
        headers = response.http_response.headers
        await self._limiter.record(
            started,
            throttled=response.http_response.status_code == 429,
            retry_after=retry_after_seconds(headers.get("Retry-After")),
            remaining=_remaining(headers.get("x-ms-ratelimit-remaining-calls-per-second")),
            release=own_slot,
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


# ---------------------------------------------------------------- total deadlines

#: Seconds a write (DELETE, PATCH) or a token request already started may run past the run's
#: budget, so that an in-flight delete can report what the registry did. The HTTP trigger's
#: budget (200 s) plus this stays below Azure's 230 s front-end limit.
WRITE_GRACE = 15.0


def grace_for(method: str, path: str) -> float:
    """Seconds past the budget a request may run: none for a read, WRITE_GRACE otherwise."""
    read = method.upper() in ("GET", "HEAD") and not _is_token_path(path)
    return 0.0 if read else WRITE_GRACE


class RequestTimeout(NoAnswer):
    """A request got no complete answer in time (a registry that drips or stalls its answer)."""


_T = TypeVar("_T")


async def within_budget(
    awaitable: Awaitable[_T], what: str, *, limit: float, grace: float = 0.0
) -> _T:
    """Await `awaitable` for at most `limit` seconds, and not past the run's budget (+ grace).

    The transport's read timeout is per read: a registry that sends a byte every few seconds
    never trips it. This is the total: BudgetSpent when the budget ran out (the run stops
    starting work), RequestTimeout when the registry was only too slow.
    """
    timeout = limit
    left = budget.remaining()
    if left is not None:
        timeout = min(timeout, left + grace)
    if timeout <= 0:
        if isinstance(awaitable, Coroutine):
            awaitable.close()  # never started
        raise budget.BudgetSpent(f"{what}: not started, the time budget ran out")
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        if budget.spent():
            raise budget.BudgetSpent(f"{what}: abandoned, the time budget ran out") from None
        raise RequestTimeout(f"{what}: no complete answer within {timeout:g}s") from None


class DeadlinePolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Per call (retries included): every operation ends within `limit` and the run's budget.

    Reads end at the budget; writes and token requests get WRITE_GRACE beyond it.
    """

    def __init__(self, limit: float) -> None:
        super().__init__()
        self._limit = limit

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        http = request.http_request
        path = urlsplit(http.url).path
        return await within_budget(
            self.next.send(request),
            f"{http.method} {path}",
            limit=self._limit,
            grace=grace_for(http.method, path),
        )
