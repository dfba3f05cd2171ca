"""The aiohttp transport, with one SSL context per CA file shared by every request, and the one
way an answer's body is read: streamed, and never past a cap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import AsyncHttpResponse

from purge.registry.protocol import RegistryError

#: Seconds to connect, and to wait for each read. azure-core's default is 300 s for both: a
#: registry that accepts a request and never answers would hold one operation past the HTTP
#: trigger's 230 s limit. A timed-out read is a failed attempt, retried within RETRY_TOTAL.
CONNECTION_TIMEOUT = 10.0
READ_TIMEOUT = 60.0


class SharedSslTransport(AioHttpTransport):  # type: ignore[misc]
    """azure-core's aiohttp transport, building the SSL context for a CA file once.

    Stock azure-core builds a new `ssl.SSLContext` from `connection_verify` on every request;
    aiohttp keys pooled connections by context, so no connection would ever be reused: one TLS
    handshake per request, and idle connections piling up (figures in benchmarks/README.md).
    One context per (cert, verify) restores keep-alive.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ssl_contexts: dict[tuple[Any, Any], Any] = {}

    def _build_ssl_config(self, cert: Any, verify: Any) -> Any:
        key = (cert, verify)
        if key not in self._ssl_contexts:
            self._ssl_contexts[key] = super()._build_ssl_config(cert, verify)
        return self._ssl_contexts[key]


# ---------------------------------------------------------------- bounded answers


class BodyTooLarge(RegistryError):
    """The registry sent (or announced) more than the cap for that answer; the rest is unread."""


@dataclass(frozen=True)
class BodyCap:
    """How many bytes of an answer are read at most, and why a real registry stays below."""

    limit: int
    why: str


#: A listing page: ACR answers at most 1000 entries per page, well under 1 MB.
PAGE_CAP = BodyCap(16 * 1024 * 1024, "an ACR page of 1000 entries is well under 1 MB")
#: Any other answer: one tag, manifest or repository, a manifest body, a token. ACR refuses
#: manifests over 4 MB (azure-containerregistry refuses to read one), and the properties of a
#: tag, manifest or repository and a token are far smaller.
ANSWER_CAP = BodyCap(
    4 * 1024 * 1024,
    "ACR stores no manifest over 4 MB; a tag's, manifest's or repository's properties and a "
    "token are far smaller",
)


@dataclass(frozen=True)
class Answer:
    """A registry's answer, its body read whole but never past its cap."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError (or RecursionError) when it is not."""
        return json.loads(self.content)


async def read_capped(response: AsyncHttpResponse, cap: BodyCap, what: str) -> bytes:
    """Read a streamed answer, giving up (unread) as soon as it is larger than `cap`.

    A declared Content-Length over the cap is refused before reading anything; without one, the
    count is of decoded bytes, so a compressed answer cannot inflate past the cap either.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap.limit:
        raise BodyTooLarge(f"{what}: {_too_large(f'an answer of {declared} bytes', cap)}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.iter_bytes():
        size += len(chunk)
        if size > cap.limit:
            raise BodyTooLarge(f"{what}: {_too_large('a longer answer', cap)}")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: str, cap: BodyCap) -> str:
    return (
        f"the registry sent {size}, larger than the {cap.limit} bytes accepted ({cap.why}); "
        "the rest was not read"
    )
