"""The aiohttp transport, with one SSL context per CA file shared by every request."""

from __future__ import annotations

from typing import Any

from azure.core.pipeline.transport import AioHttpTransport

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
